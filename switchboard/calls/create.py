"""The call-creation rules, for the API and for any scheduler that places calls: valid destinations, the
agent (stored or inline), caller id and trunk, and "an E.164 destination needs a trunk"."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from agents.config import AgentConfig
from api.control import CallRejected, NewCalls
from store import agents as agent_store
from store import numbers as number_store
from store import trunks as trunk_store
from store.types import DB
from trunks.phone import E164_HINT, InvalidNumber, classify_destination, normalize_e164

from . import events

TRUNK_REQUIRED = "A trunk is required when calling E.164 phone numbers."
BAD_DESTINATION = "Each phone number must be in E.164 format or SIP URI format."


def destinations(raw: list[str], batch: bool) -> list[tuple[str, str]]:
    """Each destination classified as ("e164" | "sip", normalised value); all errors at once."""
    parsed, fields = [], {}
    for i, value in enumerate(raw):
        try:
            parsed.append(classify_destination(value))
        except InvalidNumber:
            fields[f"to_number.{i}" if batch else "to_number"] = [E164_HINT]
    if fields:
        raise CallRejected(BAD_DESTINATION, fields=fields)
    return parsed


def _field(name: str, message: str) -> CallRejected:
    return CallRejected(message, fields={name: [message]})


async def agent(db: DB, org_id: UUID, request: NewCalls) -> tuple[Any, str, dict[str, Any]]:
    """(agent id or None for an inline agent, its name, its configuration)."""
    if request.agent_id is not None and request.inline_agent is not None:
        raise _field("agent", "Give agent_id or an inline agent, not both.")
    if request.inline_agent is not None:
        name, config = request.inline_agent
        return None, name, config
    if request.agent_id is None:
        raise _field("agent_id", "agent_id (or an inline agent) is required.")
    record = await agent_store.agents.get(db, org_id, request.agent_id)
    if record is None:
        raise _field("agent_id", "No agent with that id.")
    if not record["enabled"]:
        raise _field("agent_id", "The agent is disabled.")
    return record["id"], record["name"], record["config"]


async def caller_id_and_trunk(db: DB, org_id: UUID, request: NewCalls) -> tuple[Any, str | None, Any]:
    """(number id, caller id in E.164, trunk id) from the number, the from_number and the trunk given."""
    number = None
    from_number = None
    if request.number_id is not None:
        number = await number_store.numbers.get(db, org_id, request.number_id)
        if number is None:
            raise _field("number_id", "No number with that id.")
        if number["status"] != "active":
            raise _field("number_id", "The number must be active.")
        from_number = number["number"]
    elif request.from_number is not None:
        try:
            from_number = normalize_e164(request.from_number)
        except InvalidNumber as exc:
            raise _field("from_number", str(exc)) from exc
    trunk_id = request.trunk_id if request.trunk_id is not None else (number["trunk_id"] if number else None)
    if trunk_id is not None:
        trunk = await trunk_store.trunks.get(db, org_id, trunk_id)
        if trunk is None:
            raise _field("trunk_id", "No trunk with that id.")
        if not trunk["enabled"]:
            raise _field("trunk_id", "The trunk must be active (enabled).")
    return (number["id"] if number else None), from_number, trunk_id


async def create_calls(db: DB, org_id: UUID, request: NewCalls) -> list[dict[str, Any]]:
    """Check every rule, then write one pending outbound call per destination (all or none)."""
    dests = destinations(request.destinations, request.batch)
    agent_id, agent_name, config = await agent(db, org_id, request)
    number_id, from_number, trunk_id = await caller_id_and_trunk(db, org_id, request)
    if trunk_id is None and any(kind == "e164" for kind, _ in dests):
        raise CallRejected(TRUNK_REQUIRED, fields={"trunk_id": [TRUNK_REQUIRED]})
    typed = AgentConfig.load(config)
    common = {
        "direction": "outbound", "status": "pending", "from_number": from_number, "agent_id": agent_id,
        "agent_name": agent_name, "agent_config": config, "trunk_id": trunk_id, "number_id": number_id,
        "record": request.record if request.record is not None else typed.recording_enabled,
        "metadata": request.metadata, "user_data": request.user_data,
        "max_duration_seconds": request.max_duration_seconds or typed.max_duration_seconds,
        "webhooks": request.webhooks,
    }
    return await events.created(db, org_id, [{**common, "to_number": dest} for _, dest in dests])
