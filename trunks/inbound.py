"""Inbound routing: which tenant and agent answer an INVITE, or which SIP status refuses it and why."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from store import agents as agent_store
from store import numbers as number_store
from store import trunks as trunk_store
from store.types import DB

from .phone import InvalidNumber, normalize_e164


@dataclass(frozen=True)
class Route:
    """Answer: the call belongs to ``org_id`` and ``agent`` answers it."""

    org_id: Any
    agent: dict[str, Any]
    number: dict[str, Any] | None
    to_number: str


@dataclass(frozen=True)
class Refusal:
    """Refuse with ``status``; ``reason`` is recorded on the failed call. ``org_id`` when one is known."""

    status: int
    reason: str
    to_number: str
    org_id: Any = None
    number: dict[str, Any] | None = None


def e164_from_user(user: str) -> str | None:
    """``+15550001111``, ``15550001111`` or ``0015550001111`` → E.164; None when it is not a number."""
    candidate = user.strip()
    if candidate.startswith("00"):
        candidate = "+" + candidate[2:]
    elif candidate.isdigit():
        candidate = "+" + candidate
    try:
        return normalize_e164(candidate)
    except InvalidNumber:
        return None


def source_allowed(cidrs: list[Any], source_host: str | None) -> bool:
    if not cidrs:
        return True
    if not source_host:
        return False
    try:
        addr = ipaddress.ip_address(source_host)
    except ValueError:
        return False
    return any(addr in ipaddress.ip_network(str(c), strict=False) for c in cidrs)


async def route(db: DB, request_user: str, source_host: str | None,
                aliases: dict[str, tuple[Any, Any]]) -> Route | Refusal:
    """Route by the Request-URI user: a SIP alias (``demo``), else a number normalised to E.164."""
    alias = aliases.get(request_user.lower())
    if alias is not None:
        org_id, agent_id = alias
        agent = await agent_store.agents.get(db, org_id, agent_id)
        if agent is None or not agent["enabled"]:
            return Refusal(480, "no_agent", request_user, org_id)
        return Route(org_id, agent, None, request_user)
    e164 = e164_from_user(request_user)
    if e164 is None:
        return Refusal(404, "unknown_number", request_user)
    number = await number_store.find_by_number(db, e164)
    if number is None:
        return Refusal(404, "unknown_number", e164)
    org_id = number["org_id"]
    trunk = await trunk_store.trunks.get(db, org_id, number["trunk_id"])
    if trunk is None or not trunk["enabled"]:
        return Refusal(480, "trunk_disabled", e164, org_id, number)
    if not source_allowed(trunk["inbound_cidrs"], source_host):
        return Refusal(403, "source_not_allowed", e164, org_id, number)
    if number["status"] != "active":
        return Refusal(480, "number_inactive", e164, org_id, number)
    if number["agent_id"] is None:
        return Refusal(480, "no_agent", e164, org_id, number)
    agent = await agent_store.agents.get(db, org_id, number["agent_id"])
    if agent is None or not agent["enabled"]:
        return Refusal(480, "agent_disabled", e164, org_id, number)
    return Route(org_id, agent, number, e164)
