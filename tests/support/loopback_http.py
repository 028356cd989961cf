"""Run a test's aiohttp application (a protocol test server) on a free loopback port."""

from __future__ import annotations

from aiohttp import web


async def serve_on_loopback(app: web.Application, *, shutdown_timeout: float = 0.5) -> tuple[web.AppRunner, int]:
    """Start ``app`` on 127.0.0.1 with a port the OS picks; returns its runner (``cleanup()`` stops it)
    and the port."""
    runner = web.AppRunner(app, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
