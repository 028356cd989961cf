"""Calls: create (one or a batch), list, get, delete, end, cancel, transcript.

A created call is written as ``pending`` and handed to call control; placement is asynchronous.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from api import errors
from api.control import CallRejected, EndOutcome, NewCalls
from api.keys import CALLS, POOL, SETTINGS, VOICES
from api.models.calls import (
    ActiveCallQuery,
    CallCreate,
    CallEnd,
    CallEventOut,
    CallOut,
    CallQuery,
    DtmfRequest,
    TranscriptTurn,
    TransferRequest,
)
from api.routing import Ctx, Result
from sipcore.causes import DisconnectionReason
from store import calls as call_store
from store import trunks as trunk_store
from trunks.phone import E164_HINT, InvalidNumber, classify_destination

from . import registry
from .agents import agent_config

_WEBHOOK_FIELDS = (
    "post_call_webhook_url", "post_call_webhook_method", "post_call_webhook_headers",
    "call_status_webhook_url", "call_status_webhook_method", "call_status_webhook_headers",
)


def present(ctx: Ctx, record: dict[str, Any], transcript: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    answered, ended = record["answered_at"], record["ended_at"]
    seconds = None
    if answered is not None:
        seconds = int(((ended or datetime.now(UTC)) - answered).total_seconds())
    recording_url = None
    if record["recording_path"]:
        recording_url = f"{ctx.app[SETTINGS].base_url}/api/v1/calls/{record['id']}/recording"
    data = {
        **record,
        "call_id": record["id"],
        "agent": record["agent_name"],
        "duration_seconds": seconds,
        "duration_minutes": round(seconds / 60, 2) if seconds is not None else None,
        "cost": float(record["cost"]) if record["cost"] is not None else None,
        "recording_url": recording_url,
        "transcript": [_turn(t) for t in transcript] if transcript is not None else None,
    }
    return CallOut.model_validate(data).model_dump(mode="json")


def _turn(t: dict[str, Any]) -> dict[str, Any]:
    return {
        "role": t["role"], "content": t["content"], "timestamp": t["created_at"].isoformat().replace("+00:00", "Z"),
        "start_ms": t["start_ms"], "end_ms": t["end_ms"], "agent_name": t["agent_name"],
        "tool_call": t["tool_call"], "interrupted": t["interrupted"],
    }


@registry.route("POST", "/calls", summary="Place one call, or one per number in an array", tag="Calls",
                body=CallCreate, response=CallOut, status=201, errors=(503,),
                extra_response={"message": {"type": "string", "description": "e.g. \"3 calls initiated successfully\"."}})
async def create_calls(ctx: Ctx) -> Result:
    control = ctx.app[CALLS]
    if not control.accepting:
        raise errors.Unavailable("The server is draining and takes no new calls.", headers={"Retry-After": "30"})
    body: CallCreate = ctx.body
    batch = isinstance(body.to_number, list)
    request = NewCalls(
        destinations=list(body.to_number) if isinstance(body.to_number, list) else [body.to_number], batch=batch,
        agent_id=body.agent_id,
        inline_agent=(body.agent.name, agent_config(body.agent, ctx.app[VOICES])) if body.agent is not None else None,
        number_id=body.number_id, from_number=body.from_number, trunk_id=body.trunk_id, record=body.record,
        metadata=body.metadata, user_data=body.user_data, max_duration_seconds=body.max_duration_seconds,
        webhooks=_jsonable({f: getattr(body, f) for f in _WEBHOOK_FIELDS if getattr(body, f) is not None}),
    )
    try:
        created = await control.create(ctx.app[POOL], ctx.org_id, request)
    except CallRejected as exc:
        raise errors.ValidationFailed(exc.message, fields=exc.fields) from exc
    if batch:
        n = len(created)
        return Result([present(ctx, c) for c in created], status=201,
                      extra={"message": f"{n} call{'s' if n != 1 else ''} initiated successfully"})
    return Result(present(ctx, created[0]), status=201, extra={"message": "Call initiated successfully"})


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {k: ([h.model_dump() for h in v] if isinstance(v, list) else v) for k, v in values.items()}


@registry.route("GET", "/calls/active", summary="List active calls", tag="Calls", query=ActiveCallQuery,
                response=CallOut, many=True)
async def list_active_calls(ctx: Ctx) -> Result:
    q = ctx.query
    items, total = await call_store.list_calls(ctx.app[POOL], ctx.org_id, {"active": True}, q.limit, q.offset)
    return Result([present(ctx, c) for c in items], total=total, limit=q.limit, offset=q.offset)


@registry.route("GET", "/calls", summary="List calls", tag="Calls", query=CallQuery, response=CallOut, many=True)
async def list_calls(ctx: Ctx) -> Result:
    q: CallQuery = ctx.query
    filters = q.model_dump(exclude={"limit", "offset"})
    items, total = await call_store.list_calls(ctx.app[POOL], ctx.org_id, filters, q.limit, q.offset)
    return Result([present(ctx, c) for c in items], total=total, limit=q.limit, offset=q.offset)


async def load_call(ctx: Ctx) -> dict[str, Any]:
    record = await call_store.calls.get(ctx.app[POOL], ctx.org_id, ctx.ids["call_id"])
    if record is None:
        raise errors.NotFound("No call with that id.")
    return record


@registry.route("GET", "/calls/{call_id}", summary="Get a call", tag="Calls", response=CallOut, errors=(404,))
async def get_call(ctx: Ctx) -> Result:
    record = await load_call(ctx)
    return Result(present(ctx, record, await call_store.transcript(ctx.app[POOL], record["id"])))


@registry.route("DELETE", "/calls/{call_id}", summary="Delete an ended call", tag="Calls", status=204,
                errors=(404, 409))
async def delete_call(ctx: Ctx) -> None:
    outcome = await call_store.delete_ended(ctx.app[POOL], ctx.org_id, ctx.ids["call_id"])
    if outcome == "missing":
        raise errors.NotFound("No call with that id.")
    if outcome == "active":
        raise errors.Conflict("Cannot delete an active call. Wait for the call to complete or fail.")


async def _end(ctx: Ctx, reason: str, *, only_unanswered: bool) -> Result:
    """Hang up (or cancel) through the call domain; 200 with the ended call, 202 when the worker running
    it was asked and has not confirmed within 10 s, 409 when it had already ended. Never a 5xx."""
    outcome = await ctx.app[CALLS].end(ctx.app[POOL], ctx.org_id, ctx.ids["call_id"], reason,
                                       only_unanswered=only_unanswered)
    if outcome is EndOutcome.MISSING:
        raise errors.NotFound("No call with that id.")
    if outcome is EndOutcome.ALREADY_ENDED:
        raise errors.Conflict("The call has already ended.")
    if outcome is EndOutcome.ANSWERED:
        raise errors.Conflict("The call was already answered; use POST /calls/{id}/end.")
    return Result(present(ctx, await load_call(ctx)), status=202 if outcome is EndOutcome.REQUESTED else 200)


@registry.route("POST", "/calls/{call_id}/end", summary="Hang up a call", tag="Calls", body=CallEnd,
                response=CallOut, errors=(404, 409))
async def end_call(ctx: Ctx) -> Result:
    return await _end(ctx, ctx.body.reason, only_unanswered=False)


@registry.route("POST", "/calls/{call_id}/cancel", summary="Cancel a call before it is answered", tag="Calls",
                response=CallOut, errors=(404, 409))
async def cancel_call(ctx: Ctx) -> Result:
    return await _end(ctx, DisconnectionReason.API_HANGUP, only_unanswered=True)


@registry.route("GET", "/calls/{call_id}/events", summary="The call's events, oldest first", tag="Calls",
                response=CallEventOut, many=True, errors=(404,))
async def get_events(ctx: Ctx) -> Result:
    """Status changes, DTMF received and sent, transfers, tool calls, provider fallbacks."""
    record = await load_call(ctx)
    items = [CallEventOut.model_validate(e).model_dump(mode="json")
             for e in await call_store.events(ctx.app[POOL], record["id"])]
    return Result(items, total=len(items), limit=len(items), offset=0)


@registry.route("GET", "/calls/{call_id}/transcript", summary="The call's transcript turns", tag="Calls",
                response=TranscriptTurn, many=True, errors=(404,))
async def get_transcript(ctx: Ctx) -> Result:
    record = await load_call(ctx)
    turns = await call_store.transcript(ctx.app[POOL], record["id"])
    return Result([_turn(t) for t in turns], total=len(turns), limit=len(turns), offset=0)


async def _live(ctx: Ctx) -> dict[str, Any]:
    record = await load_call(ctx)
    if record["status"] != "in_progress":
        raise errors.Conflict(f"The call is {record['status']}; it must be in progress.")
    return record


@registry.route("POST", "/calls/{call_id}/dtmf", summary="Send DTMF digits (RFC 4733)", tag="Calls",
                body=DtmfRequest, response=CallOut, errors=(404, 409))
async def send_dtmf(ctx: Ctx) -> Result:
    record = await _live(ctx)
    if not await ctx.app[CALLS].send_dtmf(record["id"], ctx.body.digits.upper()):
        raise errors.Conflict("The call is not live on this server.")
    return Result(present(ctx, await load_call(ctx)))


@registry.route("POST", "/calls/{call_id}/transfer", summary="Transfer the call (blind SIP REFER)", tag="Calls",
                body=TransferRequest, response=CallOut, errors=(404, 409, 502))
async def transfer_call(ctx: Ctx) -> Result:
    record = await _live(ctx)
    target = ctx.body.target.strip()
    try:
        kind, value = classify_destination(target)
    except InvalidNumber as exc:
        raise errors.ValidationFailed.field("target", E164_HINT) from exc
    if kind == "e164":
        trunk = await trunk_store.trunks.get(ctx.app[POOL], ctx.org_id, record["trunk_id"]) if record["trunk_id"] else None
        if trunk is None:
            raise errors.ValidationFailed.field("target", "Transferring to a phone number needs the call to have a trunk.")
        from trunks.accounts import dial_target

        value = dial_target(value, trunk)
    try:
        handled = await ctx.app[CALLS].transfer(record["id"], value)
    except Exception as exc:  # the engine's TransferError: the call goes on
        raise errors.TransferFailed(f"The transfer failed: {exc}. The call continues.") from exc
    if not handled:
        raise errors.Conflict("The call is not live on this server.")
    return Result(present(ctx, await load_call(ctx)))
