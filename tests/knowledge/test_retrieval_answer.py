"""The retrieval answerer on the demo knowledge base: a caller's question → a few speakable sentences."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from agents.engines import RetrievalEngine
from agents.knowledge.demo import DEMO_KB_NAME, DEMO_TEXTS
from agents.knowledge.service import KnowledgeService
from agents.providers.base import TextDelta
from store import knowledge as kb_store


@pytest.fixture
async def demo_kb(db, service: KnowledgeService, org: Any) -> Any:
    kb, sources = await kb_store.create(db, org, DEMO_KB_NAME, auto_refresh=False, texts=DEMO_TEXTS, urls=[])
    for s in sources:
        service.schedule(org, kb["id"], s["id"])
    await asyncio.wait_for(service.idle(), 60)
    assert (await kb_store.knowledge_bases.get(db, org, kb["id"]))["status"] == "complete"
    return kb["id"]


def _speakable(text: str) -> None:
    assert len(text.split()) <= 60
    assert len(re.findall(r"[.!?](?:\s|$)", text)) <= 3
    assert not re.search(r"https?://|www\.|[*#`\[\]|]", text)


async def test_what_does_switchboard_do(service, org, demo_kb) -> None:
    answer = service.answerer(org, [demo_kb])
    text = await answer("what does switchboard do")
    assert text is not None and text.startswith("Switchboard")
    assert re.search(r"phone calls", text) and re.search(r"AI", text), text
    _speakable(text)
    assert answer.last_ms is not None and answer.last_ms < 5000
    assert answer.last_similarity is not None and answer.last_similarity >= answer.threshold


QUESTIONS = [
    ("what is switchboard", r"self-hosted voice AI telephony server"),
    ("what is a trunk", r"trunk connects Switchboard to a phone carrier"),
    ("are calls recorded", r"recorded"),
    ("does it work without the cloud", r"without any cloud account"),
    ("which cloud providers are supported", r"OpenAI"),
    ("how do i get started", r"make run"),
    ("how much does switchboard cost", r"free"),
    ("who am i talking to", r"demo agent"),
]


async def test_demo_questions_get_their_answer_and_others_none(service, org, demo_kb) -> None:
    answer = service.answerer(org, [demo_kb])
    for question, expected in QUESTIONS:
        text = await answer(question)
        assert text is not None and re.search(expected, text), (question, text)
        _speakable(text)
    for question in ["what is the capital of france", "recipe for chocolate cake", "what time is it", "", "   "]:
        assert await answer(question) is None, question


async def test_another_organization_gets_nothing(service, other_org, demo_kb) -> None:
    assert await service.answerer(other_org, [demo_kb])("what does switchboard do") is None


async def test_the_retrieval_engine_speaks_the_answer_or_the_fallback(service, org, demo_kb) -> None:
    engine = RetrievalEngine(service.answerer(org, [demo_kb]), "Sorry, I can only talk about Switchboard.")
    said = [e.text async for e in engine.respond("what does switchboard do") if isinstance(e, TextDelta)]
    assert len(said) == 1 and said[0].startswith("Switchboard") and engine.stats.ttft_ms is not None
    said = [e.text async for e in engine.respond("what is the capital of france") if isinstance(e, TextDelta)]
    assert said == ["Sorry, I can only talk about Switchboard."]


async def test_a_failing_store_means_the_fallback_not_a_crash(service, org, demo_kb, monkeypatch) -> None:
    def broken(*args: Any) -> Any:
        raise RuntimeError("chroma is down")

    monkeypatch.setattr(service.vectors, "query", broken)
    assert await service.answerer(org, [demo_kb])("what does switchboard do") is None
