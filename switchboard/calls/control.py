"""The call domain behind the API's port (``api.control.CallControl``): creating calls and ending them
wherever they run. ``OfflineCalls`` serves a server without a SIP engine (calls wait ``pending``);
``switchboard.calls.telephony.Telephony`` adds the live calls of this worker."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from api.control import EndOutcome, NewCalls
from sipcore.causes import ACTIVE_STATUSES, ENDED_STATUSES, CallStatus, DisconnectionReason, HangupCause
from store import calls as call_store
from store.types import DB

from . import events
from .create import create_calls
from .session import CallSession

log = logging.getLogger(__name__)

END_WAIT = 10.0  # seconds POST /end waits for the final status before answering 202


class OfflineCalls:
    """Call control without a SIP engine: calls are created and wait; nothing is live here."""

    accepting = True
    worker: str | None = None

    def __init__(self) -> None:
        self.sessions: dict[UUID, CallSession] = {}

    def submit(self, call_ids: list[UUID]) -> None:
        return None

    async def create(self, db: DB, org_id: UUID, request: NewCalls) -> list[dict[str, Any]]:
        created = await create_calls(db, org_id, request)
        self.submit([c["id"] for c in created])
        return created

    async def end(self, db: DB, org_id: UUID, call_id: UUID, reason: str, *, only_unanswered: bool) -> EndOutcome:
        """Hang up a live call: this worker's session, or another worker's through the database (it polls
        its requests); a call nothing runs (pending, or its worker's session gone) is closed here."""
        record = await call_store.calls.get(db, org_id, call_id)
        if record is None:
            return EndOutcome.MISSING
        if record["status"] in ENDED_STATUSES:
            return EndOutcome.ALREADY_ENDED
        if only_unanswered and record["status"] == CallStatus.IN_PROGRESS:
            return EndOutcome.ANSWERED
        session = self.sessions.get(call_id)
        if session is not None:
            session.request_hangup(reason)
            try:
                await asyncio.wait_for(session.ended.wait(), END_WAIT)
            except TimeoutError:
                return EndOutcome.REQUESTED
            return EndOutcome.ENDED
        owner = record["worker_id"]
        if owner is not None and owner != self.worker and record["status"] != CallStatus.PENDING:
            if await call_store.request_hangup(db, org_id, call_id, reason) is None:
                return EndOutcome.ALREADY_ENDED
            return await _wait_final(db, org_id, call_id)
        closed = await close_unplaced(db, record, reason)
        if closed is None:  # it moved on meanwhile
            current = await call_store.calls.get(db, org_id, call_id)
            if current is None:
                return EndOutcome.MISSING
            return EndOutcome.ALREADY_ENDED if current["status"] in ENDED_STATUSES else EndOutcome.REQUESTED
        return EndOutcome.ENDED

    async def send_dtmf(self, call_id: UUID, digits: str) -> bool:
        return False

    async def transfer(self, call_id: UUID, target: str) -> bool:
        return False

    def trunk_changed(self, trunk_id: UUID) -> None:
        return None


async def close_unplaced(db: DB, record: dict[str, Any], reason: str) -> dict[str, Any] | None:
    """Close a call no session runs: a pending call is canceled; an answered one whose session is gone
    (its worker has no live leg for it) is completed. None when it changed status meanwhile."""
    answered = record["status"] == CallStatus.IN_PROGRESS
    return await events.transition(
        db, record["id"], CallStatus.COMPLETED if answered else CallStatus.CANCELED,
        allowed_from=(record["status"],), detail={"by": "api", "reason": reason},
        ended_at=datetime.now(UTC), hangup_cause=HangupCause.NORMAL_CLEARING if answered else HangupCause.ORIGINATOR_CANCEL,
        disconnection_reason=DisconnectionReason(reason),
        error_message=None if answered else "canceled before it was placed",
    )


async def _wait_final(db: DB, org_id: UUID, call_id: UUID) -> EndOutcome:
    deadline = time.monotonic() + END_WAIT
    while time.monotonic() < deadline:
        current = await call_store.calls.get(db, org_id, call_id)
        if current is None or current["status"] not in ACTIVE_STATUSES:
            return EndOutcome.ENDED
        await asyncio.sleep(0.1)
    return EndOutcome.REQUESTED

