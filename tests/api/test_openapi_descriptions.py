"""Every field of the OpenAPI document carries a description (the generated /docs are the reference)."""

from __future__ import annotations

from typing import Any


def _missing(node: Any, path: str, out: list[str]) -> None:
    """Every property of every object schema, at any depth, and every parameter needs a description."""
    if isinstance(node, dict):
        for name, prop in (node.get("properties") or {}).items():
            if isinstance(prop, dict) and not prop.get("description") and "$ref" not in prop:
                out.append(f"{path}.properties.{name}")
        for key, value in node.items():
            _missing(value, f"{path}.{key}", out)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _missing(value, f"{path}[{i}]", out)


async def test_every_property_and_parameter_has_a_description(client):
    resp = await client.get("/api/v1/openapi.json")
    assert resp.status == 200
    spec = await resp.json()
    missing: list[str] = []
    _missing(spec["components"]["schemas"], "components.schemas", missing)
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            for param in op.get("parameters", []):
                if not param.get("description"):
                    missing.append(f"{method.upper()} {path} parameter {param['name']}")
            _missing(op.get("responses"), f"{method.upper()} {path} responses", missing)
    assert not missing, f"{len(missing)} without a description:\n" + "\n".join(missing)
