"""Assembles the server: database, voices, secrets, call control and the API, with ordered start/stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from agents.voices import VoiceCatalog
from api.app import build_api_app
from api.keys import CALLS, HEALTH_CHECKS, POOL, SECRETS, SETTINGS, VOICES
from store import calls as call_store
from store.crypto import SecretBox
from store.db import create_pool, embedded_database_url
from store.migrate import migrate

from .bootstrap import FirstStart, ensure_demo
from .calls import CallControl, IdleCallControl
from .config import Settings

log = logging.getLogger(__name__)
FIRST_START = web.AppKey("first_start", FirstStart)
TELEPHONY: web.AppKey[Any] = web.AppKey("telephony")


def database_url(settings: Settings) -> str:
    """DATABASE_URL, or the embedded PostgreSQL under the data directory (blocking on first start)."""
    return settings.database_url or embedded_database_url(settings.data_dir)


def init_app(settings: Settings, dsn: str, *, call_control: CallControl | None = None,
             bootstrap: bool = True, telephony: bool = False) -> web.Application:
    app = build_api_app(rate_limit_per_minute=settings.rate_limit_per_minute, max_body_bytes=settings.max_body_bytes)
    app[SETTINGS] = settings
    app[SECRETS] = SecretBox(settings.resolved_secret_key())
    app[CALLS] = call_control or IdleCallControl()

    async def database(app: web.Application) -> AsyncIterator[None]:
        pool = await create_pool(dsn)
        async with pool.acquire() as conn:
            applied = await migrate(conn)
            if applied:
                log.info("migrations applied: %s", applied)
            closed = await call_store.close_orphans(conn, settings.worker)
            if closed:
                log.warning("closed %d call(s) left open by a previous process (SYSTEM_SHUTDOWN)", len(closed))
                await asyncio.get_running_loop().run_in_executor(None, repair_recordings, closed)
            if bootstrap:
                app[FIRST_START] = await ensure_demo(conn)
        app[POOL] = pool
        yield
        await pool.close()

    async def voices(app: web.Application) -> AsyncIterator[None]:
        app[VOICES] = await asyncio.get_running_loop().run_in_executor(None, VoiceCatalog.load_local)
        yield

    async def knowledge(app: web.Application) -> AsyncIterator[None]:
        """Knowledge bases: background ingestion (resumed at start) and the 12-hourly URL refresh."""
        from agents.knowledge.service import KnowledgeService
        from api.routes.knowledge_bases import KNOWLEDGE

        service = KnowledgeService.from_env(app[POOL], settings.data_dir)
        await service.start()
        app[KNOWLEDGE] = service
        if service.vectors.url:  # a chroma server (CHROMA_URL) is a dependency the health check reports
            app[HEALTH_CHECKS]["vector_store"] = lambda: service.vector_store_up
        try:
            yield
        finally:
            await service.stop()

    async def sip(app: web.Application) -> AsyncIterator[None]:
        from api.routes.knowledge_bases import KNOWLEDGE

        from .telephony import Alias, Telephony

        first: FirstStart | None = app.get(FIRST_START)
        aliases = [Alias("demo", first.org_id, first.demo_agent_id)] if first else []
        tel = Telephony(settings, app[POOL], app[SECRETS], app[VOICES], aliases=aliases, knowledge=app.get(KNOWLEDGE))
        await tel.start()
        try:
            app[CALLS] = tel
            app[TELEPHONY] = tel
            app[HEALTH_CHECKS]["sip"] = tel.healthy
            app[HEALTH_CHECKS]["realtime"] = lambda: not tel.overload.degraded
            yield
        finally:
            await tel.stop()

    app.cleanup_ctx.extend([database, voices, knowledge, *([sip] if telephony else [])])
    return app


def demo_sip_uri(settings: Settings) -> str:
    host = "127.0.0.1" if settings.sip_host in ("0.0.0.0", "::", "") else settings.sip_host
    return f"sip:demo@{host}:{settings.sip_port}"


def repair_recordings(closed: list[dict[str, Any]]) -> None:
    """Recordings of calls a crash interrupted: make their WAV headers match the audio on disk."""
    from media.recording import repair

    for call in closed:
        path = call.get("recording_path")
        if path:
            try:
                info = repair(path)
                log.info("recording of call %s finalised: %.1f s", call["id"], info.duration)
            except (OSError, ValueError) as exc:
                log.warning("recording of call %s cannot be repaired: %s", call["id"], exc)


def _banner(settings: Settings, app: web.Application) -> str:
    first: FirstStart | None = app.get(FIRST_START)
    lines = [
        "Switchboard is running.",
        f"  API:   {settings.base_url}/api/v1   (health: {settings.base_url}/api/v1/health)",
        f"  Docs:  {settings.base_url}/docs",
    ]
    if app.get(TELEPHONY) is not None:
        lines.append(f"  Call the demo agent from any softphone: {demo_sip_uri(settings)}")
    if first and first.api_key:
        lines += [
            "  Demo organization created. Its API key (shown only this once):",
            f"    {first.api_key}",
            f"  Try: curl -H 'Authorization: Bearer {first.api_key}' {settings.base_url}/api/v1/agents",
        ]
    lines.append("Press Ctrl+C to stop.")
    return "\n".join(lines)


async def serve(settings: Settings) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    dsn = await loop.run_in_executor(None, database_url, settings)
    app = init_app(settings, dsn, telephony=True)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, settings.api_host, settings.api_port)
    await site.start()
    print(_banner(settings, app), flush=True)
    await stop.wait()
    log.info("stopping: draining (new calls refused, live calls get up to %d s)", settings.drain_timeout_seconds)
    app[CALLS].accepting = False
    tel = app.get(TELEPHONY)
    if tel is not None:
        await tel.drain(settings.drain_timeout_seconds)
    await runner.cleanup()
