"""Live call events for websocket subscribers, from the outbox (so calls on any worker reach them).

The service's LISTEN connection hands every notified outbox id to ``LiveHub.notified``; the hub reads
the rows of calls someone watches and puts them on each subscriber's bounded queue. Subscribers
de-duplicate by outbox id (a row can arrive both from a notification and a resync). ``resync`` (after
the listener reconnects, and every few seconds while anyone watches) reads each watched call's rows past
what its subscribers have seen, so a lost notification only delays an event.

Partial transcripts are not call state and get no outbox row: ``publish_partial`` sends them with
``pg_notify`` on ``PARTIALS_CHANNEL`` (JSON payload), best effort, and the hub forwards them to the
call's subscribers as ``transcript_partial`` events (a missed partial is superseded by the final turn).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncpg

from ..tasks import TaskSet

log = logging.getLogger(__name__)
QUEUE_SIZE = 2000
PARTIALS_CHANNEL = "switchboard_partials"
PARTIAL_MAX_CHARS = 2000  # NOTIFY payloads are limited to 8000 bytes


async def publish_partial(db: Any, org_id: uuid.UUID | None, call_id: uuid.UUID, role: str, content: str,
                          **extra: Any) -> None:
    """A partial (interim) transcript of the turn being spoken, for live sockets on any worker."""
    import json

    payload = {"call_id": str(call_id), "org_id": str(org_id) if org_id else None, "role": role,
               "content": content[-PARTIAL_MAX_CHARS:], "final": False, **extra}
    try:
        await db.execute("SELECT pg_notify($1, $2)", PARTIALS_CHANNEL, json.dumps(payload, default=str))
    except Exception:  # best effort: the final turn follows through the outbox anyway
        log.warning("partial transcript not published", exc_info=True)
RESYNC_SECONDS = 3.0


class SubscriptionLike(Protocol):
    """What a caller hands back to ``unsubscribe`` (the API knows subscriptions only by this shape)."""

    call_id: uuid.UUID


@dataclass(eq=False)
class Subscription:
    call_id: uuid.UUID
    queue: asyncio.Queue[dict[str, Any] | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    seen: set[int] = field(default_factory=set)
    overflowed: bool = False

    def offer(self, event: dict[str, Any]) -> None:
        if event["id"] in self.seen or self.overflowed:
            return
        if event["id"] is not None:  # partials (no outbox row) have no id
            self.seen.add(event["id"])
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:  # a reader this far behind is dropped, not waited for
            self.overflowed = True
            self.queue.get_nowait()
            self.queue.put_nowait(None)


class LiveHub:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.subs: dict[uuid.UUID, set[Subscription]] = {}
        self._pending: set[int] = set()
        self._wake = asyncio.Event()
        self._resync = False
        self._tasks = TaskSet()

    async def start(self) -> None:
        self._tasks.spawn(self._pump(), "live-hub")

    async def stop(self) -> None:
        await self._tasks.close()

    def subscribe(self, call_id: uuid.UUID) -> Subscription:
        sub = Subscription(call_id)
        self.subs.setdefault(call_id, set()).add(sub)
        return sub

    def unsubscribe(self, sub: SubscriptionLike) -> None:
        group = self.subs.get(sub.call_id)
        if group is not None and isinstance(sub, Subscription):
            group.discard(sub)
            if not group:
                del self.subs[sub.call_id]

    def notified(self, outbox_id: int) -> None:
        if self.subs:
            self._pending.add(outbox_id)
            self._wake.set()

    def partial(self, raw: str) -> None:
        """A ``PARTIALS_CHANNEL`` notification: straight to the call's subscribers."""
        import json
        from datetime import UTC, datetime

        try:
            payload = json.loads(raw)
            call_id = uuid.UUID(payload["call_id"])
        except (ValueError, KeyError, TypeError):
            log.warning("live hub: malformed partial transcript notification dropped")
            return
        event = {"id": None, "event": "transcript_partial", "call_id": call_id, "payload": payload,
                 "created_at": datetime.now(UTC)}
        for sub in list(self.subs.get(call_id, ())):
            sub.offer(event)

    def resync(self) -> None:
        self._resync = True
        self._wake.set()

    async def _pump(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), RESYNC_SECONDS)
            except TimeoutError:
                self._resync = True
            self._wake.clear()
            ids, self._pending = self._pending, set()
            resync, self._resync = self._resync, False
            if not self.subs:
                continue
            try:
                await self._route(ids, resync)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("live hub: reading outbox rows failed")
                self._pending |= ids
                self._resync = True
                await asyncio.sleep(0.5)

    async def _route(self, ids: set[int], resync: bool) -> None:
        calls = list(self.subs)
        found: list[asyncpg.Record] = []
        if ids:
            found += await self.pool.fetch(
                "SELECT * FROM outbox WHERE id = ANY($1::bigint[]) AND call_id = ANY($2::uuid[]) ORDER BY id",
                list(ids), calls)
        if resync:
            floors = {c: min((max(s.seen, default=0) for s in group), default=0)
                      for c, group in self.subs.items()}
            for call_id, floor in floors.items():
                found += await self.pool.fetch(
                    "SELECT * FROM outbox WHERE call_id = $1 AND id > $2 ORDER BY id LIMIT 1000", call_id, floor)
        for record in sorted(found, key=lambda r: r["id"]):
            event = dict(record)
            for sub in list(self.subs.get(event["call_id"], ())):
                sub.offer(event)
