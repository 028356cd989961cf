"""Request id, authentication, rate limiting and the mapping of every error to the error envelope."""

from __future__ import annotations

import logging
import math
import re
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web

import store.errors as store_errors
from store import orgs

from . import errors
from .envelope import failure
from .keys import AUTH, AUTH_FAILURES, LIMITER, POOL, REQUEST_ID
from .lowlevel import SERVER_HEADER

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    given = request.headers.get("X-Request-Id", "")
    request[REQUEST_ID] = given if _REQUEST_ID.match(given) else str(uuid.uuid4())
    response = await handler(request)
    response.headers["X-Request-Id"] = request[REQUEST_ID]
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except errors.ApiError as exc:
        return failure(request, exc.status, exc.code, exc.message, exc.fields, exc.headers)
    except store_errors.NotFound as exc:
        return failure(request, 404, "not_found", exc.message)
    except store_errors.Conflict as exc:
        fields = {exc.field: [exc.message]} if exc.field else None
        return failure(request, 409, "conflict", exc.message, fields)
    except store_errors.InvalidData as exc:
        fields = {exc.field: [exc.message]} if exc.field else None
        return failure(request, 422, "validation_error", exc.message, fields)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(exc.status, "http_error")
        message = {
            404: "No such endpoint.",
            405: f"Method {request.method} is not allowed here.",
            413: "Request body is too large.",
        }.get(exc.status, exc.reason)
        headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        return failure(request, exc.status, code, message, headers=headers)
    except Exception:
        log.exception("unhandled error on %s %s (request %s)", request.method, request.path, request.get(REQUEST_ID))
        return failure(request, 500, "internal_error", "Internal server error.")


async def on_response_prepare(request: web.Request, response: web.StreamResponse) -> None:
    """Every routed response: a ``Server`` header without versions (api.lowlevel covers the rest)."""
    response.headers["Server"] = SERVER_HEADER


def _presented_key(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return request.headers.get("X-API-Key", "").strip() or None


def _too_many_failures(retry_after: float) -> errors.RateLimited:
    return errors.RateLimited("Too many failed authentication attempts from this address; try again later.",
                              headers={"Retry-After": str(max(1, math.ceil(retry_after)))})


async def authenticate(request: web.Request) -> dict:
    """The key's record. A source address with too many failed attempts gets 429 before its key is looked
    up; each failure (missing or wrong key) spends one of its tokens."""
    failures = request.app[AUTH_FAILURES]
    source = request.remote or "unknown"
    wait = failures.blocked(source)
    if wait is not None:
        raise _too_many_failures(wait)
    key = _presented_key(request)
    record = await orgs.authenticate(request.app[POOL], key) if key else None
    if record is None:
        failures.failed(source)
        if not key:
            raise errors.Unauthorized("Missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'.")
        raise errors.Unauthorized("Invalid API key.")
    return record


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    route_handler = getattr(request.match_info, "handler", None)
    needs_auth = getattr(route_handler, "requires_auth", False)
    if not needs_auth:
        return await handler(request)
    record = await authenticate(request)
    request[AUTH] = record
    verdict = request.app[LIMITER].hit(record["id"])
    if not verdict.allowed:
        raise errors.RateLimited(
            f"Rate limit of {verdict.limit} requests per minute exceeded.",
            headers={**verdict.headers(), "Retry-After": str(verdict.retry_after())},
        )
    response = await handler(request)  # an inner error_middleware has turned errors into responses
    response.headers.update(verdict.headers())
    return response
