"""The dialer: claims pending outbound calls (``FOR UPDATE SKIP LOCKED``, so workers can share one
database), keeps each trunk within its channel and calls-per-second limits, and places the calls."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sipcore.causes import CallStatus, DisconnectionReason, HangupCause
from sipcore.engine import Call, Engine
from sipcore.errors import DialRefused
from store import calls as call_store
from store.types import DB
from trunks.accounts import dial_target
from trunks.limits import CpsLimiter
from trunks.supervisor import TrunkSupervisor

from ..tasks import TaskSet
from . import events

log = logging.getLogger(__name__)

Placed = Callable[[dict[str, Any], Call, dict[str, Any] | None], object]


class Dialer:
    def __init__(self, engine: Engine, db: DB, supervisor: TrunkSupervisor, worker: str, *,
                 on_placed: Placed, capacity: Callable[[], int], poll_interval: float = 0.5,
                 answer_timeout: float = 60.0, setup_timeout: float = 32.0) -> None:
        self.engine = engine
        self.db = db
        self.supervisor = supervisor
        self.worker = worker
        self.on_placed = on_placed
        self.capacity = capacity
        self.poll_interval = poll_interval
        self.answer_timeout = answer_timeout
        self.setup_timeout = setup_timeout
        self.cps = CpsLimiter()
        self._wake = asyncio.Event()
        self._tasks = TaskSet()
        self.paused = False

    def start(self) -> None:
        self._tasks.spawn(self._run(), "dialer")

    async def stop(self) -> None:
        await self._tasks.close()

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)
            except TimeoutError:
                pass
            self._wake.clear()
            if self.paused:
                continue
            try:
                await self.pass_once()
            except Exception:
                log.exception("dialer pass failed")

    async def pass_once(self) -> int:
        """Claim and place what fits now; returns how many calls were placed."""
        room = self.capacity()
        if room <= 0:
            return 0
        placed = 0
        for row in await call_store.claim_pending(self.db, self.worker, room):
            if await self._place(row):
                placed += 1
        return placed

    async def _place(self, row: dict[str, Any]) -> bool:
        trunk = None
        account = None
        if row["trunk_id"] is not None:
            trunk = self.supervisor.trunk(row["trunk_id"])
            account = self.supervisor.account(row["trunk_id"])
            if trunk is None or account is None:
                await self._fail(row, HangupCause.NORMAL_TEMPORARY_FAILURE, DisconnectionReason.TRUNK_UNAVAILABLE,
                                 "the call's trunk is not loaded on this worker (disabled or deleted)")
                return False
            limit = trunk["max_concurrent_calls"]
            if limit is not None and await call_store.trunk_busy_channels(self.db, trunk["id"]) > limit:
                await call_store.release_claim(self.db, row["id"], self.worker)  # try again on a later pass
                return False
            if not self.cps.allow(trunk["id"], trunk["calls_per_second"]):
                await call_store.release_claim(self.db, row["id"], self.worker)
                self._wake_later(1.0 / float(trunk["calls_per_second"]))
                return False
        try:
            target = dial_target(row["to_number"], trunk)
        except ValueError as exc:
            await self._fail(row, HangupCause.INVALID_NUMBER_FORMAT, DisconnectionReason.INVALID_DESTINATION,
                             f"invalid destination: {exc}")
            return False
        from_user = (row["from_number"] or "").lstrip("+") if trunk and trunk["number_format"] != "e164" \
            else row["from_number"]
        try:
            call = await self.engine.dial(target, account=account, from_user=from_user or None,
                                          answer_timeout=self.answer_timeout, setup_timeout=self.setup_timeout)
        except DialRefused as exc:
            if exc.reason in (DisconnectionReason.DRAINING, DisconnectionReason.OVER_CAPACITY):
                await call_store.release_claim(self.db, row["id"], self.worker)
                return False
            cause = {DisconnectionReason.INVALID_URI: HangupCause.INVALID_NUMBER_FORMAT,
                     DisconnectionReason.NO_ROUTE: HangupCause.NO_ROUTE_DESTINATION}.get(
                exc.reason, HangupCause.NORMAL_TEMPORARY_FAILURE)
            await self._fail(row, cause, exc.reason, f"{exc.reason.replace('_', ' ')}: {exc}")
            return False
        updated = await call_store.mark_placed(self.db, row["id"], call.sip_call_id, call.id, datetime.now(UTC))
        if updated is None:  # canceled (POST /cancel) between the claim and the INVITE: take it back
            log.info("call %s was canceled while it was being placed: hanging up", row["id"])
            await call.hangup()
            return False
        if call.sip_call_id is None:  # the engine learns it from the call's first events
            self._tasks.spawn(self._late_call_id(row, call), f"call-id-{row['id']}")
        self.on_placed(updated, call, trunk)
        return True

    async def _late_call_id(self, row: dict[str, Any], call: Call) -> None:
        """Fallback when the Call-ID was not known at placement: record it once the call is over."""
        await call.wait_ended()
        if call.sip_call_id is not None:
            await call_store.set_late_sip_call_id(self.db, row["id"], call.sip_call_id)

    def _wake_later(self, delay: float) -> None:
        asyncio.get_running_loop().call_later(delay, self._wake.set)

    async def _fail(self, row: dict[str, Any], cause: HangupCause, reason: DisconnectionReason, message: str) -> None:
        """The call could not be placed: failed, with the engine's own words."""
        await events.transition(self.db, row["id"], CallStatus.FAILED, allowed_from=(CallStatus.PENDING,),
                                ended_at=datetime.now(UTC), hangup_cause=cause, disconnection_reason=reason,
                                error_message=message, detail={"reason": reason})


