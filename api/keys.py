"""Typed application keys for the objects the API shares (aiohttp AppKey)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import asyncpg
from aiohttp import web

from store.crypto import SecretBox

from .ratelimit import RateLimiter

if TYPE_CHECKING:
    from agents.voices import VoiceCatalog
    from switchboard.calls import CallControl
    from switchboard.config import Settings

POOL = web.AppKey("pool", asyncpg.Pool)
LIMITER = web.AppKey("limiter", RateLimiter)
SECRETS = web.AppKey("secrets", SecretBox)
SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
VOICES: web.AppKey[VoiceCatalog] = web.AppKey("voices")
CALLS: web.AppKey[CallControl] = web.AppKey("call_control")
HEALTH_CHECKS: web.AppKey[dict[str, Any]] = web.AppKey("health_checks")
HEALTH_DETAILS: web.AppKey[dict[str, Any]] = web.AppKey("health_details")  # name → () -> dict of figures
REQUEST_ID = web.RequestKey("request_id", str)
AUTH: web.RequestKey[dict[str, Any]] = web.RequestKey("auth")
