"""Assembles the server: database, voices, secrets, call control and the API, with ordered start/stop."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import faulthandler
import logging
import os
import signal
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from agents.voices import VoiceCatalog
from api.app import build_api_app
from api.control import CallControl
from api.keys import CALLS, HEALTH_CHECKS, HEALTH_DETAILS, POOL, SECRETS, SETTINGS, VOICES
from api.live_tokens import TokenSigner
from store import calls as call_store
from store.crypto import SecretBox
from store.db import create_pool, embedded_database_url
from store.migrate import migrate

from .bootstrap import FirstStart, ensure_demo
from .calls import OfflineCalls, events
from .config import Settings
from .tasks import where

log = logging.getLogger(__name__)
FIRST_START = web.AppKey("first_start", FirstStart)
POOL_CLOSE_SECONDS = 10.0
TELEPHONY: web.AppKey[Any] = web.AppKey("telephony")
PLATFORM: web.AppKey[Any] = web.AppKey("platform")
JANITOR: web.AppKey[Any] = web.AppKey("recording_janitor")


def database_url(settings: Settings) -> str:
    """DATABASE_URL, or the embedded PostgreSQL under the data directory (blocking on first start)."""
    return settings.database_url or embedded_database_url(settings.data_dir)


def init_app(settings: Settings, dsn: str, *, call_control: CallControl | None = None,
             bootstrap: bool = True, telephony: bool = False, platform: bool = True) -> web.Application:
    app = build_api_app(rate_limit_per_minute=settings.rate_limit_per_minute, max_body_bytes=settings.max_body_bytes)
    app[SETTINGS] = settings
    app[SECRETS] = SecretBox(settings.resolved_secret_key())
    app[CALLS] = call_control or OfflineCalls()
    install_platform_routes(app, settings)

    async def database(app: web.Application) -> AsyncIterator[None]:
        pool = await create_pool(dsn)
        async with pool.acquire() as conn:
            applied = await migrate(conn)
            if applied:
                log.info("migrations applied: %s", applied)
            await note_last_media(conn, settings.worker)
            closed = await events.close_orphans(conn, settings.worker)
            if closed:
                log.warning("closed %d call(s) left open by a previous process (SYSTEM_SHUTDOWN)", len(closed))
                await asyncio.get_running_loop().run_in_executor(None, repair_recordings, closed)
            if bootstrap:
                app[FIRST_START] = await ensure_demo(conn)
        app[POOL] = pool
        yield
        await close_pool(pool)

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

        from .calls.telephony import Alias, Telephony

        first: FirstStart | None = app.get(FIRST_START)
        aliases = [Alias("demo", first.org_id, first.demo_agent_id)] if first else []
        tel = Telephony(settings, app[POOL], app[SECRETS], app[VOICES], aliases=aliases, knowledge=app.get(KNOWLEDGE))
        await tel.start()
        try:
            app[CALLS] = tel
            app[TELEPHONY] = tel
            app[HEALTH_CHECKS]["sip"] = tel.healthy
            app[HEALTH_DETAILS]["sip"] = lambda: dataclasses.asdict(tel.engine.stats())
            app[HEALTH_DETAILS]["realtime_scheduling"] = lambda: tel.realtime
            app[HEALTH_CHECKS]["sip_capacity"] = lambda: tel.engine.stats().orphans_pending == 0
            app[HEALTH_CHECKS]["realtime"] = lambda: not tel.overload.degraded
            # down from the SIGTERM on: a balancer in front sends new calls to another worker while this one drains
            app[HEALTH_CHECKS]["accepting_calls"] = lambda: tel.accepting
            yield
        finally:
            await tel.stop()

    async def platform_events(app: web.Application) -> AsyncIterator[None]:
        """Webhooks (dispatch, delivery), post-call reports and the live-transcript hub (switchboard.platform)."""
        from api.routes.live import LIVE_HUB

        from .platform.service import PlatformConfig, PlatformService

        service = PlatformService(app[POOL], PlatformConfig(
            dsn=dsn, worker=settings.worker, base_url=settings.base_url,
            allow_private_urls=settings.allow_private_urls, secret_box=app[SECRETS]))
        await service.start()
        app[LIVE_HUB] = service.hub
        app[PLATFORM] = service
        try:
            yield
        finally:
            await service.stop()

    async def recordings(app: web.Application) -> AsyncIterator[None]:
        """Recording storage policy: the quota the sessions check, and the retention janitor."""
        from .retention import RecordingJanitor, RecordingPolicy, configure

        policy = RecordingPolicy(settings.recording_quota_mb, settings.recording_retention_days)
        configure(policy)
        janitor = RecordingJanitor(app[POOL], settings.data_dir / "recordings", policy)
        janitor.start()
        app[JANITOR] = janitor
        try:
            yield
        finally:
            await janitor.stop()

    app.cleanup_ctx.extend([database, *([platform_events] if platform else []), voices, knowledge, recordings,
                            *([sip] if telephony else [])])
    return app


def install_platform_routes(app: web.Application, settings: Settings) -> None:
    """The live-transcript socket (token auth, outside the JSON registry) and GET /metrics."""
    from api.routes.live import LIVE_TOKENS, SOCKET_PATH, live_socket

    from .platform.http import metrics_handler

    app[LIVE_TOKENS] = TokenSigner(settings.resolved_secret_key())
    app.router.add_get(SOCKET_PATH, live_socket, name="live_socket")

    def media_stats() -> Any:
        tel = app.get(TELEPHONY)
        media = getattr(tel, "media", None)
        return getattr(media, "stats", None)

    def phrase_cache() -> Any:
        return getattr(getattr(app.get(TELEPHONY), "deps", None), "phrases", None)

    token = os.environ.get("SWITCHBOARD_METRICS_TOKEN") or None
    app.router.add_get("/metrics", metrics_handler(lambda: app[POOL], settings.worker, token, media_stats,
                                                   phrase_cache), name="prometheus_metrics")


def demo_sip_uri(settings: Settings) -> str:
    host = "127.0.0.1" if settings.sip_host in ("0.0.0.0", "::", "") else settings.sip_host
    return f"sip:demo@{host}:{settings.sip_port}"


async def note_last_media(conn: Any, worker: str) -> None:
    """Before closing calls a crash left open: each one's last media is its recording file's last write."""
    for call in await call_store.open_calls(conn, worker):
        path = call.get("recording_path")
        if path:
            try:
                mtime = (await asyncio.to_thread(Path(path).stat)).st_mtime
            except OSError:
                continue
            await call_store.set_last_media(conn, call["id"], datetime.fromtimestamp(mtime, UTC))


def demo_sip_uris(settings: Settings, listening: tuple[str, ...]) -> list[str]:
    """The demo URI on every address the SIP engine really bound over UDP ("udp HOST:PORT" entries),
    loopback first; link-local IPv6 is left out (it needs a scope a softphone cannot be given)."""
    hosts = [entry.split(" ", 1)[1].rsplit(":", 1)[0] for entry in listening if entry.startswith("udp ")]
    hosts = [h for h in hosts if not h.lower().startswith("[fe80")]
    hosts.sort(key=lambda h: (not h.startswith("127."), h.startswith("["), h))
    return [f"sip:demo@{h}:{settings.sip_port}" for h in hosts] or [demo_sip_uri(settings)]


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
    tel = app.get(TELEPHONY)
    if tel is not None:
        uris = demo_sip_uris(settings, tel.engine.stats().listening)
        lines.append(f"  Call the demo agent from any softphone: {uris[0]}")
        lines += [f"                                      or: {uri}" for uri in uris[1:]]
    if first and first.api_key:
        lines += [
            "  Demo organization created. Its API key (shown only this once):",
            f"    {first.api_key}",
            f"  Try: curl -H 'Authorization: Bearer {first.api_key}' {settings.base_url}/api/v1/agents",
        ]
    lines.append("Press Ctrl+C to stop.")
    return "\n".join(lines)


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT (Ctrl-C), then stop in phases, one log line each: draining (new calls
    refused, live calls finish), stopped. Helper processes are closed on every way out, errors included
    (and die with the server on a kill -9: agents.childproc)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    # `kill -USR1 PID` writes every thread's stack to stderr at once (faulthandler: even when the loop is stuck),
    # then, from the loop, what each of its tasks is waiting for (a server that will not stop, or stalls)
    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGUSR1, _log_tasks)
    faulthandler.register(signal.SIGUSR1, all_threads=True, chain=True)
    log.info("data directory: %s", settings.data_dir)
    runner: web.AppRunner | None = None
    try:
        dsn = await loop.run_in_executor(None, database_url, settings)
        app = init_app(settings, dsn, telephony=True)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, settings.api_host, settings.api_port)
        await site.start()
        print(_banner(settings, app), flush=True)
        await stop.wait()
        log.info("draining: new calls refused, live calls get up to %d s…", settings.drain_timeout_seconds)
        app[CALLS].accepting = False
        tel = app.get(TELEPHONY)
        if tel is not None:
            await tel.drain(settings.drain_timeout_seconds)
    finally:
        try:
            if runner is not None:
                await runner.cleanup()
        finally:
            await loop.run_in_executor(None, close_helpers)
    log.info("stopped")


async def close_pool(pool: Any, grace: float = POOL_CLOSE_SECONDS) -> None:
    """Close the database pool; a connection still held after ``grace`` seconds (by a task that outlived its
    owner's stop) is logged with the tasks still running, and the pool terminated: a stop must not hang."""
    try:
        await asyncio.wait_for(pool.close(), grace)
    except TimeoutError:
        log.error("database connections still in use %g s into the stop: closing them", grace)
        _log_tasks()
        pool.terminate()


def _log_tasks() -> None:
    tasks = asyncio.all_tasks()
    lines = [f"{len(tasks)} task(s) on the event loop:"]
    lines += [f"  {task.get_name()}: {where(task)}" for task in tasks]
    log.warning("\n".join(lines))


def close_helpers() -> None:
    """End the server's helper processes that outlive a single component (the embedding process)."""
    from agents.knowledge.embedder import embedding_process

    embedding_process().close()
