"""First start: the demo agent gets the demo knowledge base, created once and ingested in the background."""

from __future__ import annotations

import asyncio

import agents.knowledge
from agents.knowledge.demo import DEMO_KB_NAME, DEMO_TEXTS
from store import agents as agent_store
from store import knowledge as kb_store
from switchboard.bootstrap import DEMO_AGENT_CONFIG, DEMO_AGENT_NAME, ensure_demo
from tests.knowledge.conftest import make_service


async def test_demo_knowledge_base_is_created_once_and_answers(db, vectors, embedder) -> None:
    first = await ensure_demo(db)
    again = await ensure_demo(db)
    assert first.demo_kb_id == again.demo_kb_id and first.demo_agent_id == again.demo_agent_id
    assert first.demo_kb_id is not None
    items, total = await kb_store.knowledge_bases.list(db, first.org_id, None, 10, 0)
    assert total == 1 and items[0]["name"] == DEMO_KB_NAME and items[0]["status"] == "in_progress"
    agent = await agent_store.agents.get(db, first.org_id, first.demo_agent_id)
    assert agent["config"]["knowledge_base_ids"] == [str(first.demo_kb_id)]
    assert agent["config"]["response_engine"]["type"] == "retrieval"

    service = make_service(db, vectors)
    await service.start()  # picks up the demo sources by itself: start-up is not blocked by ingestion
    try:
        await asyncio.wait_for(service.idle(), 60)
        kb = await kb_store.knowledge_bases.get(db, first.org_id, first.demo_kb_id)
        assert kb["status"] == "complete"
        assert vectors.count(first.org_id, first.demo_kb_id) == len(DEMO_TEXTS) >= 10
        answer = agents.knowledge.answerer_for(service, first.org_id, agent["config"]["knowledge_base_ids"])
        assert answer is not None
        text = await answer("what does switchboard do")
        assert text and "phone calls" in text and len(text.split()) <= 60
    finally:
        await service.stop()
    assert agents.knowledge.answerer_for(None, first.org_id, [first.demo_kb_id]) is None  # no service, no lookup


async def test_a_demo_agent_from_before_gets_the_knowledge_base(db) -> None:
    first = await ensure_demo(db)
    await agent_store.agents.update(db, first.org_id, first.demo_agent_id, {"config": DEMO_AGENT_CONFIG})
    again = await ensure_demo(db)
    agent = await agent_store.find_by_name(db, again.org_id, DEMO_AGENT_NAME)
    assert agent["config"]["knowledge_base_ids"] == [str(first.demo_kb_id)] == [str(again.demo_kb_id)]


async def test_a_demo_knowledge_base_its_owner_deleted_stays_deleted(db) -> None:
    first = await ensure_demo(db)
    assert await kb_store.delete(db, first.org_id, first.demo_kb_id)  # also detaches it from the agent
    again = await ensure_demo(db)
    assert again.demo_kb_id is None
    assert (await kb_store.knowledge_bases.list(db, first.org_id, None, 10, 0))[1] == 0


def test_the_demo_knowledge_base_covers_switchboard() -> None:
    titles = " ".join(t["title"].lower() for t in DEMO_TEXTS)
    for topic in ("what switchboard is", "trunks", "phone numbers", "agents", "recordings", "api", "local voice",
                  "cloud providers", "knowledge bases", "getting started"):
        assert topic in titles, topic
