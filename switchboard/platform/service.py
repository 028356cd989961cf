"""The platform service of one worker: LISTEN on the outbox channel, the dispatcher, the deliverer, the
post-call analyzer and the live-transcript hub, all owned by one TaskSet.

Every worker runs it; PostgreSQL (SKIP LOCKED claims, leases) makes them share the work. NOTIFY only
wakes things up: each loop also polls (1 s) so a lost notification or a dead listener delays, never loses.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from store import outbox

from ..tasks import TaskSet
from .analyzer import Analyzer
from .deliverer import Deliverer, DeliveryPolicy
from .dispatcher import BATCH, dispatch_batch
from .live import PARTIALS_CHANNEL, LiveHub

log = logging.getLogger(__name__)


@dataclass
class PlatformConfig:
    dsn: str
    worker: str
    base_url: str
    allow_private_urls: bool = False
    policy: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    secret_box: Any = None  # store.crypto.SecretBox: decrypts provider keys for the report LLM
    deliver: bool = True  # False: dispatch and analyze only (a worker that must not send webhooks)


class PlatformService:
    def __init__(self, pool: asyncpg.Pool, config: PlatformConfig) -> None:
        self.pool = pool
        self.config = config
        self.hub = LiveHub(pool)
        self.deliverer = Deliverer(pool, config.worker, allow_private=config.allow_private_urls,
                                   policy=config.policy)
        self.analyzer = Analyzer(pool, config.worker, config.secret_box, allow_private=config.allow_private_urls)
        self._dispatch_wake = asyncio.Event()
        self._tasks = TaskSet()
        self._listeners: list[Callable[[int], None]] = []

    async def start(self) -> None:
        await self.hub.start()
        self._tasks.spawn(self._listen(), "outbox-listen")
        self._tasks.spawn(self._dispatch_loop(), "webhook-dispatch")
        if self.config.deliver:
            self._tasks.spawn(self.deliverer.run(), "webhook-deliver")
        self._tasks.spawn(self.analyzer.run(), "call-analyzer")

    async def stop(self) -> None:
        await self._tasks.close()
        await self.hub.stop()

    def _notified(self, outbox_id: int) -> None:
        self._dispatch_wake.set()
        self.hub.notified(outbox_id)

    async def _listen(self) -> None:
        """One dedicated connection LISTENs; it reconnects when the connection drops."""
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self.config.dsn)
                await conn.add_listener(outbox.CHANNEL, lambda *args: self._notified(int(args[3])))
                await conn.add_listener(PARTIALS_CHANNEL, lambda *args: self.hub.partial(str(args[3])))
                self.hub.resync()  # anything committed while we were not listening
                self._dispatch_wake.set()
                while not conn.is_closed():
                    await asyncio.sleep(2.0)
                    await conn.execute("SELECT 1")  # notices a dead connection
            except asyncio.CancelledError:
                raise
            except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
                log.warning("outbox listener lost its connection (%s); reconnecting", exc)
                await asyncio.sleep(1.0)
            finally:
                if conn is not None and not conn.is_closed():
                    await conn.close()

    async def _dispatch_loop(self) -> None:
        while True:
            handled = 0
            try:
                handled, created = await dispatch_batch(self.pool, self.config.base_url)
                if created:
                    self.deliverer.wake.set()
                if handled:
                    self.analyzer.wake.set()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("webhook dispatch failed; retrying")
                await asyncio.sleep(1.0)
            if handled >= BATCH:
                continue
            try:
                await asyncio.wait_for(self._dispatch_wake.wait(), 1.0)
            except TimeoutError:
                pass
            self._dispatch_wake.clear()
