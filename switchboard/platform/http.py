"""``GET /metrics``: the Prometheus text format. Gauges describing state are refreshed on each scrape.

Auth: none by default, like ``/api/v1/health`` (a scraper has no tenant API key, and the figures are
server-wide counts, no tenant data); set ``SWITCHBOARD_METRICS_TOKEN`` to require
``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from typing import Any

import asyncpg
from aiohttp import web

from store import webhooks as webhook_store

from . import metrics

log = logging.getLogger(__name__)
DIRECTIONS = ("inbound", "outbound")


def metrics_handler(pool: Callable[[], asyncpg.Pool], worker: str, token: str | None,
                    media_stats: Callable[[], Any],
                    phrase_cache: Callable[[], Any] = lambda: None) -> Callable[[web.Request], Any]:
    async def handler(request: web.Request) -> web.Response:
        if token:
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given, f"Bearer {token}"):
                return web.Response(status=401, text="metrics token required\n",
                                    headers={"WWW-Authenticate": "Bearer"})
        db = pool()
        try:
            counts = {r["direction"]: r["n"] for r in await db.fetch(
                "SELECT direction, count(*) AS n FROM calls WHERE status IN ('pending', 'ringing', 'in_progress')"
                " AND worker_id = $1 GROUP BY direction", worker)}
            for direction in DIRECTIONS:
                metrics.ACTIVE_CALLS.labels(direction).set(counts.get(direction, 0))
            metrics.WEBHOOK_QUEUE.set(await webhook_store.queue_depth(db))
            metrics.OUTBOX_BACKLOG.set(await webhook_store.undispatched(db))
        except (asyncpg.PostgresError, OSError):
            log.exception("metrics: reading the database failed (state gauges are stale)")
        metrics.set_media_stats(media_stats())
        metrics.set_phrase_cache(phrase_cache())
        body, content_type = metrics.render(request.headers.get("Accept", ""))
        return web.Response(body=body, headers={"Content-Type": content_type})

    return handler
