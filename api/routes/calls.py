"""Calls: create (one or a batch), list, get, delete, end, cancel, transcript.

A created call is written as ``pending`` and handed to call control; placement is asynchronous.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from api import errors
from api.keys import CALLS, POOL, SETTINGS, VOICES
from api.models.calls import (
    ActiveCallQuery,
    CallCreate,
    CallEnd,
    CallOut,
    CallQuery,
    DtmfRequest,
    TranscriptTurn,
    TransferRequest,
)
from api.routing import Ctx, Result
from store import agents as agent_store
from store import calls as call_store
from store import numbers as number_store
from store import trunks as trunk_store
from trunks.phone import E164_HINT, InvalidNumber, classify_destination, normalize_e164

from . import registry
from .agents import agent_config

TRUNK_REQUIRED = "A trunk is required when calling E.164 phone numbers."
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


def _destinations(body: CallCreate) -> tuple[list[tuple[str, str]], bool]:
    batch = isinstance(body.to_number, list)
    raw = body.to_number if isinstance(body.to_number, list) else [body.to_number]
    parsed, fields = [], {}
    for i, value in enumerate(raw):
        try:
            parsed.append(classify_destination(value))
        except InvalidNumber:
            fields[f"to_number.{i}" if batch else "to_number"] = [E164_HINT]
    if fields:
        raise errors.ValidationFailed("Each phone number must be in E.164 format or SIP URI format.", fields=fields)
    return parsed, batch


async def _agent(ctx: Ctx, body: CallCreate) -> tuple[Any, str, dict[str, Any]]:
    if body.agent_id is not None and body.agent is not None:
        raise errors.ValidationFailed.field("agent", "Give agent_id or an inline agent, not both.")
    if body.agent is not None:
        return None, body.agent.name, agent_config(body.agent, ctx.app[VOICES])
    if body.agent_id is None:
        raise errors.ValidationFailed.field("agent_id", "agent_id (or an inline agent) is required.")
    record = await agent_store.agents.get(ctx.app[POOL], ctx.org_id, body.agent_id)
    if record is None:
        raise errors.ValidationFailed.field("agent_id", "No agent with that id.")
    if not record["enabled"]:
        raise errors.ValidationFailed.field("agent_id", "The agent is disabled.")
    return record["id"], record["name"], record["config"]


async def _caller_id_and_trunk(ctx: Ctx, body: CallCreate) -> tuple[Any, str | None, Any]:
    pool = ctx.app[POOL]
    number = None
    from_number = None
    if body.number_id is not None:
        number = await number_store.numbers.get(pool, ctx.org_id, body.number_id)
        if number is None:
            raise errors.ValidationFailed.field("number_id", "No number with that id.")
        if number["status"] != "active":
            raise errors.ValidationFailed.field("number_id", "The number must be active.")
        from_number = number["number"]
    elif body.from_number is not None:
        try:
            from_number = normalize_e164(body.from_number)
        except InvalidNumber as exc:
            raise errors.ValidationFailed.field("from_number", str(exc)) from exc
    trunk_id = body.trunk_id if body.trunk_id is not None else (number["trunk_id"] if number else None)
    if trunk_id is not None:
        trunk = await trunk_store.trunks.get(pool, ctx.org_id, trunk_id)
        if trunk is None:
            raise errors.ValidationFailed.field("trunk_id", "No trunk with that id.")
        if not trunk["enabled"]:
            raise errors.ValidationFailed.field("trunk_id", "The trunk must be active (enabled).")
    return (number["id"] if number else None), from_number, trunk_id


@registry.route("POST", "/calls", summary="Place one call, or one per number in an array", tag="Calls",
                body=CallCreate, response=CallOut, status=201, errors=(503,),
                extra_response={"message": {"type": "string", "description": "e.g. \"3 calls initiated successfully\"."}})
async def create_calls(ctx: Ctx) -> Result:
    control = ctx.app[CALLS]
    if not control.accepting:
        raise errors.Unavailable("The server is draining and takes no new calls.", headers={"Retry-After": "30"})
    body: CallCreate = ctx.body
    destinations, batch = _destinations(body)
    agent_id, agent_name, config = await _agent(ctx, body)
    number_id, from_number, trunk_id = await _caller_id_and_trunk(ctx, body)
    if trunk_id is None and any(kind == "e164" for kind, _ in destinations):
        raise errors.ValidationFailed(TRUNK_REQUIRED, fields={"trunk_id": [TRUNK_REQUIRED]})
    webhooks = {f: getattr(body, f) for f in _WEBHOOK_FIELDS if getattr(body, f) is not None}
    common = {
        "direction": "outbound", "status": "pending", "from_number": from_number, "agent_id": agent_id,
        "agent_name": agent_name, "agent_config": config, "trunk_id": trunk_id, "number_id": number_id,
        "record": body.record if body.record is not None else bool(config.get("recording_enabled", True)),
        "metadata": body.metadata, "user_data": body.user_data,
        "max_duration_seconds": body.max_duration_seconds or config.get("max_duration_seconds"),
        "webhooks": _jsonable(webhooks),
    }
    async with ctx.app[POOL].acquire() as conn:
        created = await call_store.create_many(conn, ctx.org_id, [{**common, "to_number": dest} for _, dest in destinations])
    control.submit([c["id"] for c in created])
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


async def _close(ctx: Ctx, record: dict[str, Any], reason: str, *, only_unanswered: bool) -> dict[str, Any]:
    """End a call: the live call if this worker holds it, else close the row itself."""
    if record["status"] in call_store.ENDED:
        raise errors.Conflict("The call has already ended.")
    if only_unanswered and record["status"] == "in_progress":
        raise errors.Conflict("The call was already answered; use POST /calls/{id}/end.")
    control = ctx.app[CALLS]
    if not await control.hangup(record["id"], reason):
        now = datetime.now(UTC)
        answered = record["status"] == "in_progress"
        updated = await call_store.transition(
            ctx.app[POOL], record["id"], "completed" if answered else "canceled",
            allowed_from=("in_progress",) if answered else ("pending", "ringing"), org_id=ctx.org_id,
            detail={"by": "api", "reason": reason}, ended_at=now,
            hangup_cause="NORMAL_CLEARING" if answered else "ORIGINATOR_CANCEL", disconnection_reason=reason,
        )
        if updated is None:  # it moved on meanwhile: answer with what it is now
            raise errors.Conflict("The call changed state meanwhile; fetch it again.")
    return await load_call(ctx)


@registry.route("POST", "/calls/{call_id}/end", summary="Hang up a call", tag="Calls", body=CallEnd,
                response=CallOut, errors=(404, 409))
async def end_call(ctx: Ctx) -> Result:
    record = await _close(ctx, await load_call(ctx), ctx.body.reason, only_unanswered=False)
    return Result(present(ctx, record))


@registry.route("POST", "/calls/{call_id}/cancel", summary="Cancel a call before it is answered", tag="Calls",
                response=CallOut, errors=(404, 409))
async def cancel_call(ctx: Ctx) -> Result:
    record = await _close(ctx, await load_call(ctx), "api_hangup", only_unanswered=True)
    return Result(present(ctx, record))


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
