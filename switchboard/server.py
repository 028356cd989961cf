"""Assembles the server: database, voices, secrets, call control and the API, with ordered start/stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator

from aiohttp import web

from agents.voices import VoiceCatalog
from api.app import build_api_app
from api.keys import CALLS, POOL, SECRETS, SETTINGS, VOICES
from store import calls as call_store
from store.crypto import SecretBox
from store.db import create_pool, embedded_database_url
from store.migrate import migrate

from .bootstrap import FirstStart, ensure_demo
from .calls import CallControl, IdleCallControl
from .config import Settings

log = logging.getLogger(__name__)
FIRST_START = web.AppKey("first_start", FirstStart)


def database_url(settings: Settings) -> str:
    """DATABASE_URL, or the embedded PostgreSQL under the data directory (blocking on first start)."""
    return settings.database_url or embedded_database_url(settings.data_dir)


def init_app(settings: Settings, dsn: str, *, call_control: CallControl | None = None,
             bootstrap: bool = True) -> web.Application:
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
            closed = await call_store.close_orphans(conn)
            if closed:
                log.warning("closed %d call(s) left open by a previous process (SYSTEM_SHUTDOWN)", len(closed))
            if bootstrap:
                app[FIRST_START] = await ensure_demo(conn)
        app[POOL] = pool
        yield
        await pool.close()

    async def voices(app: web.Application) -> AsyncIterator[None]:
        app[VOICES] = await asyncio.get_running_loop().run_in_executor(None, VoiceCatalog.load_local)
        yield

    app.cleanup_ctx.extend([database, voices])
    return app


def _banner(settings: Settings, app: web.Application) -> str:
    first: FirstStart | None = app.get(FIRST_START)
    lines = [
        "Switchboard is running.",
        f"  API:   {settings.base_url}/api/v1   (health: {settings.base_url}/api/v1/health)",
        f"  Docs:  {settings.base_url}/docs",
    ]
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
    app = init_app(settings, dsn)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, settings.api_host, settings.api_port)
    await site.start()
    print(_banner(settings, app), flush=True)
    await stop.wait()
    log.info("stopping: draining")
    app[CALLS].accepting = False
    await runner.cleanup()
