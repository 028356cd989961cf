"""The one writer of call state.

Every status change, transcript turn and call event is written here, each in ONE transaction with its
outbox row (``store.outbox``: the durable copy webhooks, live sockets and other workers read). After the
commit the typed event is published to in-process subscribers (``subscribe``). Nothing else calls the
store's call writes (``transition``, ``add_turn``, ``add_event``, ``create_many``, ``insert_inbound``).

Event names (stable: webhooks rely on them): ``call_status`` on every status change, plus
``call_started`` (→ in_progress), ``call_completed`` (ended after an answer), ``call_failed`` (ended
without one); ``transcript_turn``; ``dtmf_received``, ``dtmf_sent``, ``transfer``, ``transfer_failed``,
``tool_call``, ``provider_fallback``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sipcore.causes import ENDED_STATUSES, CallStatus
from store import calls as call_store
from store import outbox
from store.types import DB, transaction

log = logging.getLogger(__name__)

CALL_STATUS = "call_status"
CALL_STARTED = "call_started"
CALL_COMPLETED = "call_completed"
CALL_FAILED = "call_failed"
TRANSCRIPT_TURN = "transcript_turn"
DTMF_RECEIVED = "dtmf_received"
DTMF_SENT = "dtmf_sent"
TRANSFER = "transfer"
TRANSFER_FAILED = "transfer_failed"
TOOL_CALL = "tool_call"
PROVIDER_FALLBACK = "provider_fallback"
CALL_EVENT_KINDS = frozenset({DTMF_RECEIVED, DTMF_SENT, TRANSFER, TRANSFER_FAILED, TOOL_CALL, PROVIDER_FALLBACK})

# what a call row shows in an event payload (not the agent's configuration, webhook headers or internals)
_PUBLIC = ("id", "org_id", "direction", "status", "to_number", "from_number", "agent_id", "agent_name", "trunk_id",
           "number_id", "metadata", "user_data", "started_at", "answered_at", "ended_at", "hangup_cause",
           "disconnection_reason", "sip_status", "error_message", "sip_call_id", "cost", "metrics",
           "created_at", "updated_at")


@dataclass(frozen=True)
class Event:
    """One committed call event, as subscribers receive it (``payload`` is what the outbox row holds)."""

    id: int  # the outbox row id
    name: str
    org_id: UUID | None
    call_id: UUID
    payload: dict[str, Any]


Subscriber = Callable[[Event], None]
_subscribers: list[Subscriber] = []


def subscribe(callback: Subscriber) -> Callable[[], None]:
    """Receive every event this process commits (sync, on the loop; must not block). Returns the
    function that unsubscribes."""
    _subscribers.append(callback)

    def unsubscribe() -> None:
        if callback in _subscribers:
            _subscribers.remove(callback)

    return unsubscribe


def _publish(events: list[Event]) -> None:
    for event in events:
        for callback in list(_subscribers):
            try:
                callback(event)
            except Exception:
                log.exception("call %s: event subscriber failed on %s", event.call_id, event.name)


def jsonable(value: Any) -> Any:
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def public_call(call: dict[str, Any]) -> dict[str, Any]:
    """The call as an event shows it."""
    data = {k: call.get(k) for k in _PUBLIC}
    data["call_id"] = call["id"]
    return jsonable(data)


async def _append(conn: Any, org_id: UUID | None, call_id: UUID, name: str, payload: dict[str, Any]) -> Event:
    payload = jsonable(payload)
    oid = await outbox.append(conn, org_id, call_id, name, payload)
    return Event(oid, name, org_id, call_id, payload)


async def _status_events(conn: Any, call: dict[str, Any], previous: str | None) -> list[Event]:
    status = call["status"]
    payload = {
        "call_id": call["id"], "status": status, "previous_status": previous,
        "disconnection_reason": call.get("disconnection_reason"), "hangup_cause": call.get("hangup_cause"),
        "sip_status": call.get("sip_status"), "error_message": call.get("error_message"),
        "at": call.get("updated_at") or datetime.now(UTC), "call": public_call(call),
    }
    out = [await _append(conn, call["org_id"], call["id"], CALL_STATUS, payload)]
    if status == CallStatus.IN_PROGRESS:
        out.append(await _append(conn, call["org_id"], call["id"], CALL_STARTED, payload))
    elif status in ENDED_STATUSES:
        name = CALL_COMPLETED if call.get("answered_at") is not None else CALL_FAILED
        out.append(await _append(conn, call["org_id"], call["id"], name, payload))
    return out


# -- status ------------------------------------------------------------------------------------------------
async def created(db: DB, org_id: UUID, values: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """New outbound calls (with their first status event), all or none."""
    published: list[Event] = []
    async with transaction(db) as conn:
        calls = await call_store.create_many(conn, org_id, values)
        for call in calls:
            published += await _status_events(conn, call, None)
    _publish(published)
    return calls


async def inbound(db: DB, org_id: UUID | None, values: dict[str, Any]) -> dict[str, Any]:
    """A new inbound call row (ringing, or failed for a recorded refusal) with its first event."""
    published: list[Event] = []
    async with transaction(db) as conn:
        call = await call_store.insert_inbound(conn, org_id, values)
        published += await _status_events(conn, call, None)
    _publish(published)
    return call


async def transition(db: DB, call_id: UUID, status: str, *, allowed_from: tuple[str, ...],
                     org_id: UUID | None = None, detail: dict[str, Any] | None = None,
                     **fields: Any) -> dict[str, Any] | None:
    """Move a call to ``status`` if it is in ``allowed_from`` (else None: someone else moved it first, so
    a final status is written exactly once), with its call_events row and outbox rows, in one transaction."""
    published: list[Event] = []
    async with transaction(db) as conn:
        previous = await conn.fetchval("SELECT status FROM calls WHERE id = $1 FOR UPDATE", call_id)
        call = await call_store.transition(conn, call_id, status, allowed_from=allowed_from, org_id=org_id,
                                           detail=detail, **fields)
        if call is not None:
            published += await _status_events(conn, call, previous)
    _publish(published)
    if call is not None and status in ENDED_STATUSES and status != CallStatus.COMPLETED:
        log.warning("call %s %s: %s (%s, SIP %s) %s", call_id, status, call.get("disconnection_reason"),
                    call.get("hangup_cause"), call.get("sip_status"), call.get("error_message") or "")
    elif call is not None:
        log.info("call %s %s%s", call_id, status,
                 f": {call.get('disconnection_reason')}" if status in ENDED_STATUSES else "")
    return call


async def close_orphans(db: DB, worker_id: str) -> list[dict[str, Any]]:
    """At start-up: this worker's calls left open by a crash end with SYSTEM_SHUTDOWN, dated at their last
    evidence of life (see ``store.calls.close_orphans``), each with its events."""
    published: list[Event] = []
    async with transaction(db) as conn:
        closed = await call_store.close_orphans(conn, worker_id)
        for call in closed:
            published += await _status_events(conn, call, call.pop("previous_status", None))
    _publish(published)
    return closed


# -- transcript and call events ----------------------------------------------------------------------------
async def turn(db: DB, org_id: UUID | None, call_id: UUID, values: dict[str, Any]) -> dict[str, Any]:
    """A finished transcript turn (tool turns also make a ``tool_call`` event)."""
    published: list[Event] = []
    async with transaction(db) as conn:
        saved = await call_store.add_turn(conn, call_id, values)
        payload = {k: saved.get(k) for k in ("role", "content", "start_ms", "end_ms", "interrupted",
                                               "agent_name", "tool_call")}
        payload["call_id"] = call_id
        published.append(await _append(conn, org_id, call_id, TRANSCRIPT_TURN, payload))
        if saved.get("role") == "tool" and saved.get("tool_call"):
            published += await _event(conn, org_id, call_id, TOOL_CALL,
                                      {**saved["tool_call"], "result": saved.get("content")})
    _publish(published)
    return saved


async def _event(conn: Any, org_id: UUID | None, call_id: UUID, kind: str, detail: dict[str, Any]) -> list[Event]:
    await call_store.add_event(conn, call_id, kind, jsonable(detail))
    return [await _append(conn, org_id, call_id, kind, {"call_id": call_id, **detail})]


async def event(db: DB, org_id: UUID | None, call_id: UUID, kind: str, detail: dict[str, Any]) -> None:
    """A non-status event in the call's history: one of ``CALL_EVENT_KINDS``."""
    if kind not in CALL_EVENT_KINDS:
        raise ValueError(f"unknown call event {kind!r}")
    async with transaction(db) as conn:
        published = await _event(conn, org_id, call_id, kind, detail)
    _publish(published)
