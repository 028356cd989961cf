"""Response engines: the llm engine gives the model each turn's knowledge and reports retrieval time."""

from __future__ import annotations

import asyncio

from agents.engines import LlmEngine, RetrievalEngine
from agents.providers.base import TextDelta
from agents.providers.openai_llm import OpenAILLM
from tests.agents.fake_openai import FakeOpenAI, Reply


async def test_llm_engine_adds_per_turn_knowledge_context_and_times_it():
    server = await FakeOpenAI().start()
    asked: list[str] = []

    async def knowledge(question: str) -> str | None:
        asked.append(question)
        await asyncio.sleep(0.02)
        return "Acme is open from nine to five." if "hours" in question else None

    try:
        server.script = [Reply(text=["Nine to five."]), Reply(text=["Hello!"])]
        engine = LlmEngine(OpenAILLM(model="m", base_url=server.base_url, api_key=""), "Be brief.",
                           knowledge=knowledge)
        text = [e.text async for e in engine.respond("what are your opening hours") if isinstance(e, TextDelta)]
        assert "".join(text) == "Nine to five."
        assert engine.retrieval_ms is not None and engine.retrieval_ms >= 20
        sent = server.requests[0]["messages"]
        assert sent[-2] == {"role": "system", "content": "From the knowledge base, relevant to the caller's next "
                                                         "question: Acme is open from nine to five."}
        assert sent[-1] == {"role": "user", "content": "what are your opening hours"}
        _ = [e async for e in engine.respond("hi there")]  # nothing matched: no context message
        assert server.requests[1]["messages"][-2]["role"] == "assistant"
        assert asked == ["what are your opening hours", "hi there"]
    finally:
        await server.stop()


async def test_retrieval_engine_answers_or_falls_back_and_times_it():
    async def knowledge(question: str) -> str | None:
        return "Switchboard answers phone calls." if "switchboard" in question else None

    engine = RetrievalEngine(knowledge, "I don't know.")
    assert [e.text async for e in engine.respond("what does switchboard do")] == ["Switchboard answers phone calls."]
    assert engine.retrieval_ms is not None
    assert [e.text async for e in engine.respond("weather")] == ["I don't know."]
