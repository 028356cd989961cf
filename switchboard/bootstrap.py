"""First start: a demo organization, its API key (printed once) and a demo agent."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from store import agents as agent_store
from store import orgs
from store.types import DB

log = logging.getLogger(__name__)

DEMO_ORG = "demo"
DEMO_AGENT_NAME = "Switchboard demo"
DEMO_AGENT_CONFIG = {
    "description": "Answers sip:demo@ calls and questions about Switchboard.",
    "voice_id": "espeak-en-us",
    "language": "en-US",
    "response_engine": {"type": "retrieval", "fallback_message": "Sorry, I don't know that yet."},
    "stt": {"provider": "local"},
    "begin_message": "Hello! This is the Switchboard demo agent. Ask me what Switchboard does.",
    "first_speaker": "agent",
    "interruptible": True,
    "max_duration_seconds": 600,
    "recording_enabled": True,
}


@dataclass
class FirstStart:
    org_id: object
    api_key: str | None  # plain key, only when created now
    demo_agent_id: object


async def ensure_demo(db: DB) -> FirstStart:
    """Create the demo organization, key and agent when the server has no organization yet."""
    first = await orgs.count_orgs(db) == 0
    org, _created = await orgs.get_or_create_org(db, DEMO_ORG)
    plain = None
    if first:
        _record, plain = await orgs.create_api_key(db, org["id"], "demo (created at first start)")
    agent = await agent_store.find_by_name(db, org["id"], DEMO_AGENT_NAME)
    if agent is None:
        agent = await agent_store.agents.insert(db, org["id"], {"name": DEMO_AGENT_NAME, "enabled": True,
                                                                "config": DEMO_AGENT_CONFIG})
    return FirstStart(org["id"], plain, agent["id"])
