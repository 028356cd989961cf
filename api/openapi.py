"""OpenAPI 3.1, generated from the same pydantic models that validate requests."""

from __future__ import annotations

import re
from importlib.metadata import version
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from .routing import Endpoint, Registry

_REF = "#/components/schemas/{model}"
_DESCRIPTIONS = {
    400: "Malformed JSON", 401: "Missing or invalid API key", 404: "Not found", 409: "State conflict",
    413: "Body too large", 422: "Validation error", 429: "Rate limited", 502: "Upstream SIP failure",
    503: "Unavailable",
}

META = {
    "type": "object",
    "properties": {
        "request_id": {"type": "string"},
        "timestamp": {"type": "string", "format": "date-time"},
        "total": {"type": "integer"},
        "limit": {"type": "integer"},
        "offset": {"type": "integer"},
    },
    "required": ["request_id", "timestamp"],
}
ERROR = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "fields": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
            },
            "required": ["code", "message"],
        },
        "meta": {"$ref": "#/components/schemas/Meta"},
    },
    "required": ["error", "meta"],
}


def _models(registry: Registry) -> list[tuple[type[BaseModel], str]]:
    seen: list[tuple[type[BaseModel], str]] = []
    for ep in registry.endpoints:
        for model, mode in ((ep.body, "validation"), (ep.response, "serialization")):
            if model is not None and (model, mode) not in seen:
                seen.append((model, mode))
    return seen


def _query_params(ep: Endpoint) -> list[dict[str, Any]]:
    if ep.query is None:
        return []
    schema = ep.query.model_json_schema(ref_template=_REF)
    required = set(schema.get("required", []))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": _inline_nullable(prop)}
        for name, prop in schema.get("properties", {}).items()
    ]


def _inline_nullable(prop: dict[str, Any]) -> dict[str, Any]:
    """Query parameters are never JSON null: drop the null branch pydantic adds for optionals."""
    prop = {k: v for k, v in prop.items() if k != "title"}
    if "anyOf" in prop:
        branches = [b for b in prop["anyOf"] if b.get("type") != "null"]
        if len(branches) == 1:
            rest = {k: v for k, v in prop.items() if k not in ("anyOf", "default")}
            return {**branches[0], **rest}
    return prop


def _envelope(ep: Endpoint, names: dict[Any, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if ep.response is not None:
        data = {"$ref": _REF.format(model=names[(ep.response, "serialization")])}
        if ep.many:
            data = {"type": "array", "items": data}
    props: dict[str, Any] = {"data": data, "meta": {"$ref": "#/components/schemas/Meta"}, **ep.extra_response}
    return {"type": "object", "properties": props, "required": ["data", "meta"]}


def build(registry: Registry, prefix: str = "/api/v1") -> dict[str, Any]:
    keys = _models(registry)
    key_map, defs = models_json_schema(keys, ref_template=_REF)  # type: ignore[arg-type]
    names = {key: value["$ref"].rsplit("/", 1)[-1] for key, value in key_map.items()}
    schemas = {**defs.get("$defs", {}), "Meta": META, "Error": ERROR}
    error_ref = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    paths: dict[str, dict[str, Any]] = {}
    for ep in registry.endpoints:
        op: dict[str, Any] = {"summary": ep.summary, "tags": [ep.tag], "operationId": ep.handler.__name__}
        params = [
            {"name": name, "in": "path", "required": True,
             "schema": {"type": "string"} if name in ep.text_params else {"type": "string", "format": "uuid"}}
            for name in re.findall(r"{(\w+)}", ep.path)
        ]
        params += _query_params(ep)
        if params:
            op["parameters"] = params
        if ep.body is not None:
            op["requestBody"] = {
                "required": ep.method != "POST" or not ep.path.endswith(("/end", "/cancel")),
                "content": {"application/json": {"schema": {"$ref": _REF.format(model=names[(ep.body, "validation")])}}},
            }
        responses: dict[str, Any] = {}
        if ep.status == 204:
            responses["204"] = {"description": "Deleted"}
        elif ep.raw_response is not None:
            responses["200"] = {"description": "Success", **ep.raw_response}
            responses["206"] = {"description": "Partial content (Range)", **ep.raw_response}
        else:
            responses[str(ep.status)] = {
                "description": "Success",
                "content": {"application/json": {"schema": _envelope(ep, names)}},
            }
        codes = set(ep.errors) | {429} if ep.auth else set(ep.errors)
        if ep.auth:
            codes |= {401}
        if ep.body is not None:
            codes |= {400, 413, 422}
        if ep.query is not None:
            codes |= {422}
        if "{" in ep.path:
            codes |= {404}
        for code in sorted(codes):
            responses[str(code)] = {"description": _DESCRIPTIONS[code], "content": error_ref}
        op["responses"] = responses
        if ep.auth:
            op["security"] = [{"bearer": []}, {"apiKey": []}]
        paths.setdefault(prefix + ep.path, {})[ep.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Switchboard API",
            "version": version("switchboard"),
            "description": "Self-hosted voice-AI telephony: agents, SIP trunks, numbers and calls.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    }
