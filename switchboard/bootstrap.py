"""First start: a demo organization, its API key (printed once), a demo agent and its demo knowledge base
(about Switchboard itself; ingested in the background by the knowledge service, not here)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from uuid import UUID

from agents.knowledge.demo import DEMO_KB_NAME, DEMO_PHRASES, DEMO_TEXTS
from store import agents as agent_store
from store import knowledge as kb_store
from store import orgs
from store.types import DB

log = logging.getLogger(__name__)

DEMO_ORG = "demo"
DEMO_AGENT_NAME = "Switchboard demo"
DEMO_AGENT_CONFIG = {
    "description": "Answers sip:demo@ calls and questions about Switchboard.",
    "voice_id": "flite-kal16",
    "language": "en-US",
    "response_engine": {"type": "retrieval", "fallback_message": "Sorry, I don't know that yet."},
    "stt": {"provider": "local", "phrases": DEMO_PHRASES},
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
    demo_kb_id: UUID | None = None


async def ensure_demo(db: DB) -> FirstStart:
    """Create the demo organization, key and agent when the server has no organization yet."""
    first = await orgs.count_orgs(db) == 0
    org, _created = await orgs.get_or_create_org(db, DEMO_ORG)
    plain = None
    if first:
        _record, plain = await orgs.create_api_key(db, org["id"], "demo (created at first start)")
    agent = await agent_store.find_by_name(db, org["id"], DEMO_AGENT_NAME)
    if agent is None:
        kb_id = await _demo_kb(db, org["id"])
        agent = await agent_store.agents.insert(db, org["id"], {
            "name": DEMO_AGENT_NAME, "enabled": True, "config": {**DEMO_AGENT_CONFIG, "knowledge_base_ids": [kb_id]}})
    elif "knowledge_base_ids" not in agent["config"]:  # a demo agent from before knowledge bases existed
        kb_id = await _demo_kb(db, org["id"])
        agent = await agent_store.agents.update(db, org["id"], agent["id"], {
            "config": {**agent["config"], "knowledge_base_ids": [kb_id]}}) or agent
    # otherwise the agent's knowledge bases are what its owner made them (a deleted demo base stays deleted)
    kb_ids = agent["config"].get("knowledge_base_ids") or []
    return FirstStart(org["id"], plain, agent["id"], UUID(kb_ids[0]) if kb_ids else None)


async def _demo_kb(db: DB, org_id: UUID) -> str:
    """The demo knowledge base's id, created now if missing: its sources start pending, and the knowledge
    service ingests them in the background once it runs (start-up does not wait)."""
    kb = await kb_store.find_by_name(db, org_id, DEMO_KB_NAME)
    if kb is None:
        kb, _sources = await kb_store.create(db, org_id, DEMO_KB_NAME, auto_refresh=False, texts=DEMO_TEXTS, urls=[])
    return str(kb["id"])
