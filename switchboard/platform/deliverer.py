"""Sends due webhook deliveries: signed, 10 s timeout, every attempt recorded, retried with exponential
backoff and jitter until 24 h have passed since the event.

A claim is a lease (``locked_until``): a worker killed mid-delivery leaves the row leased for at most
``lease`` seconds, after which any worker claims it again. A delivery is therefore sent at least once;
receivers deduplicate with the body's ``event_id`` (the same on every retry).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg

from agents import netguard
from store import webhooks as store

from . import metrics, signing
from .logctx import bound_call

log = logging.getLogger(__name__)
USER_AGENT = "Switchboard-Webhooks/1.0"


@dataclass(frozen=True)
class DeliveryPolicy:
    timeout_seconds: float = 10.0
    first_delay_seconds: float = 10.0  # after the first failure; doubles each time
    max_delay_seconds: float = 3600.0
    retry_window_seconds: float = 24 * 3600.0  # retried until the event is this old
    concurrency: int = 64
    batch: int = 100
    lease_seconds: float = 30.0  # > 2 × timeout: a live worker settles what it claimed before the lease ends

    def delay(self, attempt: int) -> float:
        """Exponential backoff with jitter: base × 2^(attempt-1), capped, times a random 0.5–1.0."""
        base = min(self.max_delay_seconds, self.first_delay_seconds * 2 ** max(0, attempt - 1))
        return base * random.uniform(0.5, 1.0)


class Deliverer:
    def __init__(self, pool: asyncpg.Pool, worker: str, *, allow_private: bool,
                 policy: DeliveryPolicy | None = None) -> None:
        self.pool = pool
        self.worker = worker
        self.allow_private = allow_private
        self.policy = policy or DeliveryPolicy()
        self.wake = asyncio.Event()
        self._sem = asyncio.Semaphore(self.policy.concurrency)
        self._inflight: set[asyncio.Task[Any]] = set()
        self._session: aiohttp.ClientSession | None = None

    async def run(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=netguard.guarded_connector(self.allow_private, limit=self.policy.concurrency),
            headers={"User-Agent": USER_AGENT}, trust_env=False)
        try:
            while True:
                claimed = await self._claim()
                if len(claimed) >= self.policy.batch:
                    continue
                await self._idle()
        finally:
            for task in list(self._inflight):
                task.cancel()
            await asyncio.gather(*self._inflight, return_exceptions=True)
            await self._session.close()

    async def _idle(self) -> None:
        """Until woken (new deliveries) or the next retry is due (at most 1 s: other workers' rows)."""
        wait = 1.0
        try:
            due = await store.next_due_at(self.pool)
            if due is not None:
                wait = min(wait, max(0.0, (due - datetime.now(UTC)).total_seconds()))
        except (asyncpg.PostgresError, OSError):
            log.exception("reading the next webhook retry time failed")
        if wait > 0:
            try:
                await asyncio.wait_for(self.wake.wait(), wait)
            except TimeoutError:
                pass
        self.wake.clear()

    async def _claim(self) -> list[dict[str, Any]]:
        # Up to two rounds of work in hand: the semaphore bounds concurrent requests, and a claimed row
        # waits at most one timeout for its turn, well inside its lease.
        free = 2 * self.policy.concurrency - len(self._inflight)
        if free < self.policy.batch // 2:
            await asyncio.wait(self._inflight, return_when=asyncio.FIRST_COMPLETED)
            return []
        try:
            claimed = await store.claim_due(self.pool, self.worker, min(free, self.policy.batch),
                                            self.policy.lease_seconds)
            if not claimed:
                return []
            secrets = await store.secrets_for(self.pool, list({d["org_id"] for d in claimed}))
        except (asyncpg.PostgresError, OSError):
            log.exception("claiming webhook deliveries failed")
            await asyncio.sleep(1.0)
            return []
        for delivery in claimed:
            task = asyncio.get_running_loop().create_task(
                self._deliver(delivery, secrets.get(delivery["org_id"], "")), name=f"webhook-{delivery['id']}")
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
        return claimed

    async def _deliver(self, delivery: dict[str, Any], secret: str) -> None:
        with bound_call(delivery["call_id"]):
            async with self._sem:
                try:
                    await self._attempt(delivery, secret)
                except asyncio.CancelledError:
                    raise
                except Exception:  # never let one delivery take the deliverer down
                    log.exception("webhook delivery %s crashed; its lease will expire and it is retried",
                                  delivery["id"])

    async def _attempt(self, delivery: dict[str, Any], secret: str) -> None:
        assert self._session is not None
        body = delivery["body"].encode()
        started_at = datetime.now(UTC)
        t0 = time.perf_counter()
        status: int | None = None
        error: str | None = None
        answer: str | None = None
        try:
            url = netguard.check_url(delivery["url"], allow_private=self.allow_private)
        except netguard.Blocked as exc:
            error = f"refused: {exc}"
        else:
            headers = {h["key"]: h["value"] for h in delivery["headers"] or []}
            headers.update({
                "Content-Type": "application/json",
                signing.EVENT_HEADER: delivery["event"],
                signing.EVENT_ID_HEADER: delivery["event_id"],
                signing.DELIVERY_HEADER: str(delivery["id"]),
                **signing.headers(secret, int(time.time()), body),
            })
            try:
                async with self._session.request(
                        delivery["method"], url, data=body, headers=headers, allow_redirects=False,
                        timeout=aiohttp.ClientTimeout(total=self.policy.timeout_seconds)) as resp:
                    status = resp.status
                    answer = (await resp.content.read(500)).decode("utf-8", "replace")
            except TimeoutError:
                error = f"timeout after {self.policy.timeout_seconds:g} s"
            except aiohttp.ClientConnectorError as exc:
                if isinstance(exc.os_error, netguard.BlockedAddress):
                    error = f"refused: {exc.os_error}"
                else:
                    error = f"connection failed: {exc.os_error}"
            except aiohttp.ClientError as exc:
                error = f"{type(exc).__name__}: {exc}"
        duration_ms = (time.perf_counter() - t0) * 1000
        ok = status is not None and 200 <= status < 300
        if ok:
            outcome, next_at = "delivered", None
        else:
            if error is None:
                error = f"HTTP {status}"
            age = (datetime.now(UTC) - delivery["event_at"]).total_seconds()
            if age >= self.policy.retry_window_seconds:
                outcome, next_at = "failed", None
            else:
                outcome = "pending"
                next_at = datetime.now(UTC) + timedelta(seconds=self.policy.delay(delivery["attempts"]))
        kept = await store.record_attempt(self.pool, delivery, self.worker, started_at, duration_ms, status, error,
                                          answer, outcome, next_at)
        metrics.WEBHOOK_ATTEMPTS.labels("delivered" if ok else "failed").inc()
        if ok:
            metrics.WEBHOOK_LATENCY.observe((datetime.now(UTC) - delivery["event_at"]).total_seconds())
        else:
            error = error or ""
            reason = "timeout" if error.startswith("timeout") else "refused" if error.startswith("refused") else (
                "http_status" if status is not None else "connection")
            metrics.WEBHOOK_FAILURES.labels(reason).inc()
            log.warning("webhook %s to %s attempt %d failed: %s%s", delivery["event"], delivery["url"],
                        delivery["attempts"], error,
                        "" if outcome == "pending" else " (giving up)")
        if not kept:
            log.warning("webhook delivery %s: lease lost while sending (another worker took it over)",
                        delivery["id"])
