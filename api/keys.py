"""Typed application keys for the objects the API shares (aiohttp AppKey)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import asyncpg
from aiohttp import web

from store.crypto import SecretBox

from .ratelimit import FailureLimiter, RateLimiter

if TYPE_CHECKING:
    from agents.voices import VoiceCatalog

    from .control import CallControl

POOL = web.AppKey("pool", asyncpg.Pool)
LIMITER = web.AppKey("limiter", RateLimiter)
AUTH_FAILURES = web.AppKey("auth_failures", FailureLimiter)
SECRETS = web.AppKey("secrets", SecretBox)
SETTINGS: web.AppKey[Any] = web.AppKey("settings")  # the composition root's settings (base_url…)
VOICES: web.AppKey[VoiceCatalog] = web.AppKey("voices")
CALLS: web.AppKey[CallControl] = web.AppKey("call_control")
HEALTH_CHECKS: web.AppKey[dict[str, Any]] = web.AppKey("health_checks")
HEALTH_DETAILS: web.AppKey[dict[str, Any]] = web.AppKey("health_details")  # name → () -> dict of figures
REQUEST_ID = web.RequestKey("request_id", str)
AUTH: web.RequestKey[dict[str, Any]] = web.RequestKey("auth")
