"""The `llm` response engine through the official `openai` SDK, against any OpenAI-compatible `base_url`.

`OpenAILLM.stream(messages, tools)` streams one chat completion: text as `TextDelta`s, function calls as
whole `ToolCall`s (assembled from the pieces the protocol streams, emitted when the choice finishes),
then `Usage` (asked for with `stream_options.include_usage`). `stream.stats` holds time to first token
and the finish reason. Errors become `ProviderError`s classified here: rate limits, 408/409/5xx,
timeouts and connection failures are retryable; other 4xx (bad key, unknown model, bad request) are not;
a failure after output was already produced is not retryable (the words may have been spoken).

The request goes through the SDK's generic ``client.post`` (its own client: auth, headers, errors, the
streamed ``ChatCompletionChunk``s), not ``chat.completions.create``: that one first walks every message
against the parameter types (``async_maybe_transform``) on the event loop, which changes nothing in the
plain role/content/tool-call dicts sent here and took 0.8 ms for 2 messages, 7 ms for 32 and 13 ms for 62
(openai 3.57, measured here): a loop stall for every call's media, growing with the conversation, and
time added to every reply.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any

from .base import LanguageModel, LLMEvent, LLMStats, LLMStream, ProviderError, TextDelta, ToolCall, Usage
from .retry import status_error
from .tls import openai_http_client


def classify(exc: Exception, *, produced: bool = False) -> ProviderError:
    """An SDK exception → ProviderError with its verdict."""
    import openai

    status = getattr(exc, "status_code", None)
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    if isinstance(exc, openai.APIStatusError) and status is not None:  # 429 → rate_limited, 5xx → retryable…
        return status_error(status, message, provider="openai", produced=produced)
    if isinstance(exc, openai.APITimeoutError):
        retryable, reason = True, "timeout"
    elif isinstance(exc, openai.APIConnectionError):
        retryable, reason = True, "connection"
    elif isinstance(exc, openai.APIError):  # an error event inside the stream
        retryable, reason = True, "stream_error"
    else:
        retryable, reason = False, "error"
    if status is not None:
        message = f"{status}: {message}"
    return ProviderError(message, retryable=retryable and not produced, reason=reason, provider="openai")


class OpenAILLM(LanguageModel):
    def __init__(
        self,
        *,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        temperature: float | None = None,
        timeout: float = 30.0,
        max_retries: int = 0,
        client: Any | None = None,
        extra_body: dict[str, Any] | None = None,
        http_client: Any | None = None,
    ) -> None:
        """`max_retries=0`: the SDK does not retry on its own; the caller decides with `retryable`
        (a voice turn rarely wants the SDK's backoff). `api_key` may be "" for local servers. `http_client`:
        an httpx client of the caller's (a tenant's URL goes through `agents.netguard.guarded_httpx_client`)."""
        import openai

        self.model = model
        self.temperature = temperature
        self.extra_body = extra_body
        self.client = client or openai.AsyncOpenAI(
            base_url=base_url, api_key=api_key or "not-needed", timeout=timeout, max_retries=max_retries,
            http_client=http_client or openai_http_client(),
        )

    def stream(self, messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]] | None = None) -> OpenAIStream:
        return OpenAIStream(self, list(messages), list(tools or ()))

    async def aclose(self) -> None:
        await self.client.close()


class OpenAIStream(LLMStream):
    def __init__(self, llm: OpenAILLM, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> None:
        self.stats = LLMStats()
        self._gen = self._run(llm, messages, tools)

    def __aiter__(self) -> AsyncIterator[LLMEvent]:
        return self._gen

    async def aclose(self) -> None:
        await self._gen.aclose()

    async def __aenter__(self) -> OpenAIStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _run(self, llm: OpenAILLM, messages: list[dict[str, Any]],
                   tools: list[dict[str, Any]]) -> AsyncGenerator[LLMEvent, None]:
        import openai
        from openai.types.chat import ChatCompletion, ChatCompletionChunk

        t0 = time.perf_counter()
        body: dict[str, Any] = {"model": llm.model, "messages": messages, "stream": True,
                                "stream_options": {"include_usage": True}}
        if tools:
            body["tools"] = tools
        if llm.temperature is not None:
            body["temperature"] = llm.temperature
        if llm.extra_body:
            body.update(llm.extra_body)  # as the SDK merges extra_body: over the named parameters
        produced = False
        pending: dict[int, dict[str, str]] = {}
        sdk_stream = None
        try:
            sdk_stream = await llm.client.post("/chat/completions", body=body, cast_to=ChatCompletion, stream=True,
                                               stream_cls=openai.AsyncStream[ChatCompletionChunk])
            async for chunk in sdk_stream:
                if chunk.usage is not None:
                    u = chunk.usage
                    self.stats.usage = Usage(u.prompt_tokens or 0, u.completion_tokens or 0, u.total_tokens or 0)
                    yield self.stats.usage
                for choice in chunk.choices or ():
                    delta = choice.delta
                    if delta is not None and delta.content:
                        if self.stats.ttft_ms is None:
                            self.stats.ttft_ms = (time.perf_counter() - t0) * 1000.0
                        produced = True
                        yield TextDelta(delta.content)
                    for tc in (delta.tool_calls or ()) if delta is not None else ():
                        if self.stats.ttft_ms is None:
                            self.stats.ttft_ms = (time.perf_counter() - t0) * 1000.0
                        slot = pending.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                        slot["id"] = tc.id or slot["id"]
                        if tc.function is not None:
                            slot["name"] += tc.function.name or ""  # some servers split names too
                            slot["arguments"] += tc.function.arguments or ""
                    if choice.finish_reason:
                        self.stats.finish_reason = choice.finish_reason
                        for call in _drain(pending):
                            produced = True
                            yield call
            for call in _drain(pending):  # a server that never sent finish_reason
                yield call
        except openai.OpenAIError as e:
            raise classify(e, produced=produced) from e
        finally:
            self.stats.duration_ms = (time.perf_counter() - t0) * 1000.0
            if sdk_stream is not None:
                await sdk_stream.close()


def _drain(pending: dict[int, dict[str, str]]) -> list[ToolCall]:
    calls = [ToolCall(p["id"] or f"call_{i}", p["name"], p["arguments"]) for i, p in sorted(pending.items())
             if p["name"]]
    pending.clear()
    return calls
