"""The success and error envelopes every endpoint answers with."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from .keys import REQUEST_ID


def _meta(request: web.Request, **extra: Any) -> dict[str, Any]:
    return {
        "request_id": request.get(REQUEST_ID, ""),
        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        **extra,
    }


def _json_default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return str(value)


def dumps(value: Any) -> str:
    import json

    return json.dumps(value, default=_json_default, separators=(",", ":"))


def success(request: web.Request, data: Any, *, status: int = 200, meta: dict[str, Any] | None = None,
            extra: dict[str, Any] | None = None) -> web.Response:
    body = {"data": data, **(extra or {}), "meta": _meta(request, **(meta or {}))}
    return web.json_response(body, status=status, dumps=dumps)


def failure(request: web.Request, status: int, code: str, message: str,
            fields: dict[str, list[str]] | None = None, headers: dict[str, str] | None = None) -> web.Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    return web.json_response({"error": error, "meta": _meta(request)}, status=status, headers=headers, dumps=dumps)
