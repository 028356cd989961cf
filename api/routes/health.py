"""Health: no auth; 503 when any dependency is down."""

from __future__ import annotations

import asyncio
from importlib.metadata import version
from typing import Any, Literal

from aiohttp import web
from pydantic import Field

from api.envelope import success
from api.keys import HEALTH_CHECKS, HEALTH_DETAILS, POOL
from api.models.common import ResponseModel
from api.routing import Ctx

from . import registry


class HealthOut(ResponseModel):
    status: Literal["healthy", "degraded"]
    service: str
    version: str
    checks: dict[str, Literal["up", "down"]]
    details: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Figures per component, e.g. sip: native_calls (what the SIP engine really holds) "
                    "versus application_calls, max_calls, malformed_rejected, tcp_connections.")


async def _database_up(app: web.Application) -> bool:
    try:
        async with asyncio.timeout(2):
            return await app[POOL].fetchval("SELECT 1") == 1
    except Exception:
        return False


@registry.route("GET", "/health", summary="Service health", tag="Health", response=HealthOut, auth=False,
                errors=(503,))
async def health(ctx: Ctx) -> web.Response:
    checks = {"database": "up" if await _database_up(ctx.app) else "down"}
    for name, probe in ctx.app[HEALTH_CHECKS].items():
        try:
            checks[name] = "up" if probe() else "down"
        except Exception:
            checks[name] = "down"
    healthy = all(v == "up" for v in checks.values())
    details: dict[str, dict[str, Any]] = {}
    for name, report in ctx.app[HEALTH_DETAILS].items():
        try:
            details[name] = report()
        except Exception:
            details[name] = {}
    data = HealthOut(status="healthy" if healthy else "degraded", service="switchboard", version=version("switchboard"),
                     checks=checks, details=details)  # type: ignore[arg-type]
    return success(ctx.request, data.model_dump(), status=200 if healthy else 503)
