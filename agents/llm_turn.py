"""One agent reply from the `llm` engine: stream the model, run the tools it calls, go back to it.

`respond()` yields `TextDelta`s to speak (feed them to `SentenceSplitter`), a `ToolOutcome` per tool
call (for the transcript, and built-in actions for the runtime: end_call, transfer_call, send_dtmf),
and `Usage` per model round. It appends the assistant and tool messages to `messages`, so the next turn
continues the same conversation. After a tool round it asks the model again (up to `max_rounds`), except
when a tool ended the turn (end_call, transfer_call). `TurnStats` collects ttft of the first round and
tokens of all rounds.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from .providers.base import LanguageModel, TextDelta, ToolCall, Usage
from .tools import ToolExecutor, ToolOutcome

TurnEvent = TextDelta | ToolOutcome | Usage


@dataclass(slots=True)
class TurnStats:
    ttft_ms: float | None = None
    rounds: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


async def respond(
    llm: LanguageModel,
    messages: list[dict[str, Any]],
    tools: ToolExecutor | None = None,
    *,
    max_rounds: int = 4,
    stats: TurnStats | None = None,
) -> AsyncIterator[TurnEvent]:
    stats = stats if stats is not None else TurnStats()
    for _ in range(max_rounds):
        stats.rounds += 1
        text: list[str] = []
        calls: list[ToolCall] = []
        stream = llm.stream(messages, tools.specs if tools else None)
        try:
            async for ev in stream:
                if isinstance(ev, TextDelta):
                    text.append(ev.text)
                    yield ev
                elif isinstance(ev, ToolCall):
                    calls.append(ev)
                elif isinstance(ev, Usage):
                    stats.prompt_tokens += ev.prompt_tokens
                    stats.completion_tokens += ev.completion_tokens
                    stats.total_tokens += ev.total_tokens
                    yield ev
        finally:
            if stats.ttft_ms is None:
                stats.ttft_ms = stream.stats.ttft_ms
            await stream.aclose()
        assistant: dict[str, Any] = {"role": "assistant", "content": "".join(text) or None}
        if calls:
            assistant["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments or "{}"}}
                for c in calls
            ]
        messages.append(assistant)
        if not calls:
            return
        if tools is None:
            outcomes = [ToolOutcome(c, "error: no tools are available", error=True) for c in calls]
        else:
            outcomes = list(await asyncio.gather(*(tools.run(c) for c in calls)))
        for o in outcomes:
            messages.append({"role": "tool", "tool_call_id": o.call.id, "content": o.content})
            yield o
        if any(o.ends_turn for o in outcomes):
            return
