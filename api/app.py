"""The aiohttp application for the HTTP API: middlewares, routes, the OpenAPI document and the docs."""

from __future__ import annotations

from aiohttp import web

from . import docs, lowlevel, openapi
from .keys import AUTH_FAILURES, HEALTH_CHECKS, HEALTH_DETAILS, LIMITER
from .middleware import auth_middleware, error_middleware, on_response_prepare, request_id_middleware
from .ratelimit import FailureLimiter, RateLimiter
from .routes import load_all

PREFIX = "/api/v1"


def build_api_app(*, rate_limit_per_minute: int = 1000, max_body_bytes: int = 1024 * 1024,
                  auth_failure_burst: int = 10, auth_failures_per_minute: float = 30.0) -> web.Application:
    """The API application. The composition root (switchboard.server) fills the shared objects
    (POOL, SETTINGS, SECRETS, VOICES, CALLS) through its cleanup contexts."""
    app = web.Application(
        # errors inside the auth layer become envelopes there, so rate-limit headers can be added to them;
        # the outer error layer catches what auth itself raises (401, 429).
        middlewares=[request_id_middleware, error_middleware, auth_middleware, error_middleware],
        client_max_size=max_body_bytes,
    )
    app.on_response_prepare.append(on_response_prepare)
    lowlevel.install()
    app[LIMITER] = RateLimiter(rate_limit_per_minute)
    app[AUTH_FAILURES] = FailureLimiter(auth_failure_burst, auth_failures_per_minute)
    app[HEALTH_CHECKS] = {}
    app[HEALTH_DETAILS] = {}
    registry = load_all()
    registry.install(app, PREFIX)
    spec = openapi.build(registry, PREFIX)

    async def openapi_json(request: web.Request) -> web.Response:
        return web.json_response(spec)

    app.router.add_get(PREFIX + "/openapi.json", openapi_json)
    docs.install(app)
    return app
