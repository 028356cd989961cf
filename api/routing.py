"""A small route registry: each endpoint declares its models once, and they both validate requests and
generate the OpenAPI document (api/openapi.py)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, ValidationError

from . import errors
from .envelope import success
from .keys import AUTH

MAX_JSON_DEPTH = 32
_TYPE_TAGS = {"str", "int", "float", "bool", "list", "dict", "none", "null"}


@dataclass
class Ctx:
    """What a handler gets: the request, its organization, validated path ids, query and body."""

    request: web.Request
    org_id: UUID
    key_id: UUID
    ids: dict[str, UUID]
    query: Any = None
    body: Any = None

    @property
    def app(self) -> web.Application:
        return self.request.app


@dataclass
class Result:
    """A handler's answer: data for the envelope, plus list paging or extra top-level fields."""

    data: Any
    status: int = 200
    total: int | None = None
    limit: int | None = None
    offset: int | None = None
    extra: dict[str, Any] | None = None


@dataclass
class Endpoint:
    method: str
    path: str
    handler: Callable[[Ctx], Awaitable[Result | web.StreamResponse | None]]
    summary: str
    tag: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    many: bool = False
    status: int = 200
    auth: bool = True
    errors: tuple[int, ...] = ()
    extra_response: dict[str, Any] = field(default_factory=dict)
    raw_response: dict[str, Any] | None = None  # a non-JSON-envelope response description
    text_params: tuple[str, ...] = ()  # path parameters that are not UUIDs


class Registry:
    def __init__(self) -> None:
        self.endpoints: list[Endpoint] = []

    def route(self, method: str, path: str, *, summary: str, tag: str, **kwargs: Any):
        def decorate(fn: Callable[[Ctx], Awaitable[Any]]) -> Callable[[Ctx], Awaitable[Any]]:
            self.endpoints.append(Endpoint(method.upper(), path, fn, summary, tag, **kwargs))
            return fn

        return decorate

    def install(self, app: web.Application, prefix: str) -> None:
        for ep in self.endpoints:
            app.router.add_route(ep.method, prefix + ep.path, _wrap(ep), name=ep.handler.__name__)


def pydantic_fields(exc: ValidationError, root: str | None = None) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for err in exc.errors(include_url=False):
        parts = [str(p) for p in err["loc"] if not _is_type_tag(p)]
        name = ".".join(parts) or (root or "body")
        message = err["msg"].removeprefix("Value error, ")
        out.setdefault(name, []).append(message)
    return out


def _is_type_tag(part: Any) -> bool:
    if isinstance(part, int):
        return False
    text = str(part)
    return text in _TYPE_TAGS or "[" in text or text.startswith(("function-", "constrained-"))


def _first_message(fields: dict[str, list[str]]) -> str:
    name, messages = next(iter(fields.items()))
    return f"{name}: {messages[0]}"


def is_json_type(content_type: str) -> bool:
    """``application/json`` or a ``+json`` media type (parameters such as charset allowed)."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def nesting_depth_exceeds(value: Any, limit: int) -> bool:
    """True when arrays/objects nest deeper than ``limit`` (checked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _nested_too_deeply() -> errors.BadRequest:
    return errors.BadRequest(f"Request body is nested too deeply (at most {MAX_JSON_DEPTH} levels of arrays and "
                             "objects).")


async def _parse_body(request: web.Request, model: type[BaseModel]) -> BaseModel:
    raw = await request.read()
    if not raw.strip():
        payload: Any = {}
    else:
        if not is_json_type(request.headers.get("Content-Type", "")):
            raise errors.UnsupportedMediaType("The request body must be JSON: send 'Content-Type: application/json'.")
        try:
            payload = json.loads(raw)
        except RecursionError:
            raise _nested_too_deeply() from None
        except json.JSONDecodeError as exc:
            raise errors.BadRequest(f"Request body is not valid JSON: {exc.msg} at line {exc.lineno} column "
                                    f"{exc.colno}.") from None
        except UnicodeDecodeError:
            raise errors.BadRequest("Request body is not valid JSON: it is not UTF-8 text.") from None
        if nesting_depth_exceeds(payload, MAX_JSON_DEPTH):
            raise _nested_too_deeply()
    if not isinstance(payload, dict):
        raise errors.ValidationFailed("The request body must be a JSON object.", fields={"body": ["must be an object"]})
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        fields = pydantic_fields(exc)
        raise errors.ValidationFailed(_first_message(fields), fields=fields) from exc


def query_names(model: type[BaseModel]) -> set[str]:
    """The query parameters a model accepts: its field names and their aliases."""
    names: set[str] = set()
    for name, info in model.model_fields.items():
        names.add(name)
        if info.alias:
            names.add(info.alias)
        choices = getattr(info.validation_alias, "choices", None)
        names.update(c for c in choices or () if isinstance(c, str))
        if isinstance(info.validation_alias, str):
            names.add(info.validation_alias)
    return names


def _parse_query(request: web.Request, model: type[BaseModel]) -> BaseModel:
    params: dict[str, Any] = {}
    for key in request.query:
        values = request.query.getall(key)
        params[key] = values if len(values) > 1 else values[0]
    accepted = query_names(model)
    unknown = [k for k in params if k not in accepted]
    if unknown:  # a misspelt filter must not silently answer with everything
        allowed = ", ".join(sorted(accepted))
        fields = {k: [f"Unknown query parameter; this endpoint takes: {allowed}."] for k in unknown}
        raise errors.ValidationFailed(f"Unknown query parameter {unknown[0]!r}; this endpoint takes: {allowed}.",
                                      fields=fields)
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        fields = pydantic_fields(exc)
        raise errors.ValidationFailed(_first_message(fields), fields=fields) from exc


def _path_ids(request: web.Request, text_params: tuple[str, ...]) -> dict[str, UUID]:
    ids = {}
    for name, value in request.match_info.items():
        if name in text_params:
            continue
        try:
            ids[name] = UUID(value)
        except ValueError as exc:
            # A malformed id cannot name any resource: same answer as an unknown one.
            raise errors.NotFound(f"No {name.removesuffix('_id').replace('_', ' ')} with id {value!r}.") from exc
    return ids


def _wrap(ep: Endpoint) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        ids = _path_ids(request, ep.text_params)
        query = _parse_query(request, ep.query) if ep.query else None
        body = await _parse_body(request, ep.body) if ep.body else None
        auth = request.get(AUTH)
        ctx = Ctx(request, auth["org_id"] if auth else None, auth["id"] if auth else None, ids, query, body)  # type: ignore[arg-type]
        result = await ep.handler(ctx)
        if isinstance(result, web.StreamResponse):
            return result
        if result is None:
            return web.Response(status=204)
        meta = None
        if result.total is not None:
            meta = {"total": result.total, "limit": result.limit, "offset": result.offset}
        return success(request, result.data, status=result.status, meta=meta, extra=result.extra)

    handler.__name__ = ep.handler.__name__
    handler.requires_auth = ep.auth  # type: ignore[attr-defined]
    return handler
