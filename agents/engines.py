"""Response engines: what the agent says to a caller's turn.

Every engine keeps the conversation's history and yields what the llm engine yields: ``TextDelta``s to
speak, ``ToolOutcome``s for the runtime to act on, ``Usage`` for the metrics. ``interrupted(heard)``
rewrites the last reply to what the caller actually heard (barge-in).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

from .llm_turn import TurnEvent, TurnStats, respond
from .providers.base import LanguageModel, TextDelta
from .templates import render
from .tools import ToolExecutor

DEFAULT_FALLBACK = "Sorry, I don't know that yet."

Answerer = Callable[[str], Awaitable[str | None]]


class ResponseEngine(Protocol):
    stats: TurnStats

    def respond(self, user_text: str) -> AsyncIterator[TurnEvent]: ...

    def remind(self) -> AsyncIterator[TurnEvent]: ...

    def interrupted(self, heard: str) -> None: ...

    async def aclose(self) -> None: ...


class LlmEngine:
    """The ``llm`` engine: any OpenAI-compatible chat model with tools, through the official SDK. With
    ``knowledge``, each caller turn first looks up the agent's knowledge bases and gives the model what
    matched as context (the time it took is ``retrieval_ms``)."""

    def __init__(self, llm: LanguageModel, system_prompt: str, tools: ToolExecutor | None = None,
                 knowledge: Answerer | None = None) -> None:
        self.llm = llm
        self.tools = tools
        self.knowledge = knowledge
        self.messages: list[dict[str, Any]] = [{"role": "system", "content": system_prompt}] if system_prompt else []
        self.stats = TurnStats()
        self.retrieval_ms: float | None = None

    def add_assistant(self, text: str) -> None:
        """A line the agent said outside a reply (the begin message): the model should know it."""
        self.messages.append({"role": "assistant", "content": text})

    async def respond(self, user_text: str) -> AsyncIterator[TurnEvent]:
        self.retrieval_ms = None
        if self.knowledge is not None:
            t0 = time.perf_counter()
            context = await self.knowledge(user_text)
            self.retrieval_ms = (time.perf_counter() - t0) * 1000.0
            if context:
                self.messages.append({"role": "system", "content": "From the knowledge base, relevant to the "
                                      f"caller's next question: {context}"})
        self.messages.append({"role": "user", "content": user_text})
        self.stats = TurnStats()
        async for event in respond(self.llm, self.messages, self.tools, stats=self.stats):
            yield event

    async def remind(self) -> AsyncIterator[TurnEvent]:
        self.messages.append({"role": "system", "content": "The caller has been silent for a while. "
                              "Briefly check whether they are still there."})
        self.stats = TurnStats()
        async for event in respond(self.llm, self.messages, self.tools, stats=self.stats):
            yield event

    def interrupted(self, heard: str) -> None:
        for message in reversed(self.messages):
            if message["role"] == "assistant" and not message.get("tool_calls"):
                message["content"] = heard
                return

    async def aclose(self) -> None:
        if self.tools is not None:
            await self.tools.aclose()


class RetrievalEngine:
    """The ``retrieval`` engine: the best matching knowledge, shortened to a few speakable sentences, or
    the agent's fallback line. ``answer`` is the knowledge lookup (none configured: always the fallback)."""

    def __init__(self, answer: Answerer | None, fallback: str | None) -> None:
        self.answer = answer
        self.fallback = fallback or DEFAULT_FALLBACK
        self.stats = TurnStats()
        self.retrieval_ms: float | None = None

    async def respond(self, user_text: str) -> AsyncIterator[TurnEvent]:
        self.stats = TurnStats(rounds=1)
        t0 = time.perf_counter()
        reply = await self.answer(user_text) if self.answer is not None else None
        self.stats.ttft_ms = self.retrieval_ms = (time.perf_counter() - t0) * 1000.0
        yield TextDelta(reply or self.fallback)

    async def remind(self) -> AsyncIterator[TurnEvent]:
        yield TextDelta("Are you still there?")

    def interrupted(self, heard: str) -> None:
        return None

    async def aclose(self) -> None:
        return None


def system_prompt(agent: dict[str, Any], user_data: dict[str, Any]) -> str:
    engine = agent.get("response_engine") or {}
    return render(engine.get("system_prompt") or "You are a helpful phone agent. Keep answers short.", user_data)
