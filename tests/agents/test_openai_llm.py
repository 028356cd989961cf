"""The `llm` engine through the real openai SDK against a loopback server speaking its protocol."""

from __future__ import annotations

import asyncio
import gc
import json
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from fake_openai import Fail, FakeOpenAI, Reply

from agents.llm_turn import TurnStats, respond
from agents.providers.base import ProviderError, TextDelta, ToolCall, Usage
from agents.providers.openai_llm import OpenAILLM  # noqa: E402
from agents.sentences import SentenceSplitter
from agents.tools import ToolExecutor, ToolOutcome, tool_specs
from tests.support.loopback_http import serve_on_loopback


@pytest.fixture
async def server() -> AsyncIterator[FakeOpenAI]:
    s = await FakeOpenAI().start()
    yield s
    await s.stop()


@pytest.fixture
async def llm(server: FakeOpenAI) -> AsyncIterator[OpenAILLM]:
    m = OpenAILLM(model="gpt-test", base_url=server.base_url, api_key="sk-test", temperature=0.3, timeout=5)
    yield m
    await m.aclose()


@pytest.fixture
async def tool_server() -> AsyncIterator[tuple[str, list[Any]]]:
    """A customer's HTTP function endpoint."""
    seen: list[Any] = []

    async def order(request: web.Request) -> web.Response:
        seen.append((request.method, dict(request.query), await request.text()))
        if request.query.get("slow"):
            await asyncio.sleep(0.6)
        if request.method == "POST" and (await request.json()).get("order_id") == "BAD":
            return web.json_response({"detail": "no such order"}, status=404)
        return web.json_response({"status": "shipped", "eta": "tomorrow"})

    app = web.Application()
    app.router.add_route("*", "/order", order)
    runner, port = await serve_on_loopback(app)
    yield f"http://127.0.0.1:{port}/order", seen
    await runner.cleanup()


async def collect(stream: Any) -> list[Any]:
    return [e async for e in stream]


async def test_streams_text_usage_and_time_to_first_token(server: FakeOpenAI, llm: OpenAILLM) -> None:
    server.script = [Reply(["Hello", " there.", " How can", " I help?"], first_delay=0.08, usage=(20, 9))]
    stream = llm.stream([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
    events = await collect(stream)
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hello", " there.", " How can", " I help?"]
    assert events[-1] == Usage(20, 9, 29)
    assert 80 <= stream.stats.ttft_ms < 2000 and stream.stats.finish_reason == "stop"
    req = server.requests[0]
    assert req["model"] == "gpt-test" and req["stream"] is True and req["temperature"] == 0.3
    assert req["stream_options"] == {"include_usage": True} and "tools" not in req
    assert server.headers[0]["Authorization"] == "Bearer sk-test"


async def test_tool_calls_are_assembled_from_pieces(server: FakeOpenAI, llm: OpenAILLM) -> None:
    args = {"target": "sip:sales@example.com", "reason": "wants a quote for 12 licences"}
    server.script = [Reply(["One moment."], tool_calls=[("transfer_call", args), ("lookup", {"q": "ä ✓"})],
                           arg_piece=3)]
    specs = tool_specs([{"type": "transfer_call"}, {"type": "function", "name": "lookup", "description": "d",
                                                     "parameters": {"type": "object"}, "url": "http://x"}])
    events = await collect(llm.stream([{"role": "user", "content": "sales please"}], specs))
    calls = [e for e in events if isinstance(e, ToolCall)]
    assert [(c.id, c.name, c.args()) for c in calls] == [
        ("call_0_transfer_call", "transfer_call", args), ("call_1_lookup", "lookup", {"q": "ä ✓"})]
    assert server.requests[0]["tools"] == specs


@pytest.mark.parametrize(
    ("fail", "retryable", "reason"),
    [
        (Fail(429, "slow down", "rate_limit_error", {"retry-after": "0"}), True, "rate_limited"),
        (Fail(500), True, "server_error"),
        (Fail(503), True, "server_error"),
        (Fail(401, "bad key", "invalid_request_error"), False, "auth"),
        (Fail(404, "no such model", "invalid_request_error"), False, "not_found"),
        (Fail(400, "bad messages", "invalid_request_error"), False, "bad_request"),
    ],
)
async def test_http_errors_are_classified(server: FakeOpenAI, llm: OpenAILLM, fail: Fail, retryable: bool,
                                          reason: str) -> None:
    server.script = [fail]
    with pytest.raises(ProviderError) as e:
        await collect(llm.stream([{"role": "user", "content": "hi"}]))
    assert (e.value.retryable, e.value.reason) == (retryable, reason)
    assert len(server.requests) == 1  # no hidden SDK retries: the caller decides


async def test_connection_refused_and_timeout_are_retryable(server: FakeOpenAI) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    m = OpenAILLM(model="m", base_url=dead, api_key="k", timeout=2)
    with pytest.raises(ProviderError) as e:
        await collect(m.stream([{"role": "user", "content": "hi"}]))
    assert e.value.retryable and e.value.reason == "connection"
    await m.aclose()
    server.script = [Reply(["late"], first_delay=0.8)]
    m = OpenAILLM(model="m", base_url=server.base_url, api_key="k", timeout=0.3)
    t = time.perf_counter()
    with pytest.raises(ProviderError) as e:
        await collect(m.stream([{"role": "user", "content": "hi"}]))
    assert e.value.retryable and e.value.reason == "timeout" and time.perf_counter() - t < 0.75
    await m.aclose()


async def test_failure_after_output_is_not_retryable(server: FakeOpenAI, llm: OpenAILLM) -> None:
    server.script = [Reply(["Part one.", " Part two."], cut_after=2)]
    got: list[Any] = []
    with pytest.raises(ProviderError) as e:
        async for ev in llm.stream([{"role": "user", "content": "hi"}]):
            got.append(ev)
    assert got == [TextDelta("Part one.")] and e.value.retryable is False
    server.script = [Reply(["x"], error_event=True)]
    with pytest.raises(ProviderError) as e:
        await collect(llm.stream([{"role": "user", "content": "hi"}]))
    assert e.value.reason == "stream_error" and e.value.retryable is False


async def test_aclose_mid_stream(server: FakeOpenAI, llm: OpenAILLM) -> None:
    server.script = [Reply([f"w{i} " for i in range(100)], delay=0.02)]
    stream = llm.stream([{"role": "user", "content": "talk"}])
    it = aiter(stream)
    first = [await anext(it) for _ in range(2)]
    await stream.aclose()  # barge-in
    assert first == [TextDelta("w0 "), TextDelta("w1 ")]
    assert stream.stats.duration_ms is not None and stream.stats.duration_ms < 1000


async def test_http_tool_result_goes_back_to_the_model(server: FakeOpenAI, llm: OpenAILLM,
                                                       tool_server: tuple[str, list[Any]]) -> None:
    url, seen = tool_server
    tools = ToolExecutor([{"type": "function", "name": "order_status", "description": "Look up an order",
                           "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}},
                           "url": url, "method": "POST"}], allow_private=True)
    server.script = [Reply(["Let me check."], tool_calls=[("order_status", {"order_id": "A17"})]),
                     Reply(["Your order ships tomorrow."], usage=(40, 6))]
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Where is order A17?"}]
    stats = TurnStats()
    events = [e async for e in respond(llm, messages, tools, stats=stats)]
    await tools.aclose()
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Let me check.Your order ships tomorrow."
    (outcome,) = [e for e in events if isinstance(e, ToolOutcome)]
    assert not outcome.error and json.loads(outcome.content) == {"status": "shipped", "eta": "tomorrow"}
    assert seen == [("POST", {}, '{"order_id": "A17"}')]
    second = server.requests[1]["messages"]
    assert second[1]["tool_calls"][0]["function"] == {"name": "order_status", "arguments": '{"order_id": "A17"}'}
    assert second[2] == {"role": "tool", "tool_call_id": "call_0_order_status", "content": outcome.content}
    assert messages[-1] == {"role": "assistant", "content": "Your order ships tomorrow."}
    assert stats.rounds == 2 and stats.total_tokens == 19 + 46 and stats.ttft_ms is not None


async def test_http_tool_errors_and_get_queries(tool_server: tuple[str, list[Any]]) -> None:
    url, seen = tool_server
    spec = {"type": "function", "name": "t", "description": "d", "url": url}
    get = ToolExecutor([{**spec, "method": "GET"}], allow_private=True, timeout=0.2)
    ok = await get.run(ToolCall("c1", "t", '{"id": "7", "n": 2}'))
    assert not ok.error and seen[-1][:2] == ("GET", {"id": "7", "n": "2"})
    slow = await get.run(ToolCall("c2", "t", '{"slow": "1"}'))
    assert slow.error and "timed out" in slow.content
    bad_json = await get.run(ToolCall("c3", "t", '{"id": '))
    assert bad_json.error and len(seen) == 2  # no request with broken arguments
    unknown = await get.run(ToolCall("c4", "nope", "{}"))
    assert unknown.error
    await get.aclose()
    post = ToolExecutor([{**spec, "method": "POST"}], allow_private=True)
    missing = await post.run(ToolCall("c5", "t", '{"order_id": "BAD"}'))
    assert missing.error and "HTTP 404" in missing.content and "no such order" in missing.content
    await post.aclose()
    guarded = ToolExecutor([{**spec, "method": "POST"}])  # loopback refused by default
    refused = await guarded.run(ToolCall("c6", "t", "{}"))
    assert refused.error and len(seen) == 3
    await guarded.aclose()


async def test_builtins_become_actions_and_end_the_turn(server: FakeOpenAI, llm: OpenAILLM) -> None:
    tools = ToolExecutor([{"type": "end_call"}, {"type": "send_dtmf"},
                          {"type": "transfer_call", "target": "sip:desk@example.com"}])
    server.script = [Reply(["Goodbye!"], tool_calls=[("end_call", {"reason": "done"})])]
    messages: list[dict[str, Any]] = [{"role": "user", "content": "bye"}]
    events = [e async for e in respond(llm, messages, tools)]
    (o,) = [e for e in events if isinstance(e, ToolOutcome)]
    assert o.action == "end_call" and o.ends_turn and len(server.requests) == 1
    dtmf = await tools.run(ToolCall("c", "send_dtmf", '{"digits": "12#"}'))
    assert dtmf.action == "send_dtmf" and dtmf.args == {"digits": "12#"} and not dtmf.ends_turn
    assert (await tools.run(ToolCall("c", "send_dtmf", '{"digits": "1; rm"}'))).error
    transfer = await tools.run(ToolCall("c", "transfer_call", "{}"))
    assert transfer.action == "transfer_call" and transfer.args["target"] == "sip:desk@example.com"
    with pytest.raises(ValueError):
        tool_specs([{"type": "end_call"}, {"type": "end_call"}])


async def test_knowledge_lookup_tool() -> None:
    async def kb(query: str) -> str:
        return f"Opening hours for {query}: 9 to 5."

    tools = ToolExecutor([{"type": "knowledge_lookup"}], knowledge=kb)
    o = await tools.run(ToolCall("c", "knowledge_lookup", '{"query": "Saturday"}'))
    assert o.content == "Opening hours for Saturday: 9 to 5." and o.action is None


async def test_first_sentence_is_ready_before_the_reply_ends(server: FakeOpenAI, llm: OpenAILLM) -> None:
    words = "Sure, I can help. " + " ".join(["Here is more detail about your booking."] * 6)
    server.script = [Reply([w + " " for w in words.split()], delay=0.01)]
    splitter, first_at, t0 = SentenceSplitter(), None, time.perf_counter()
    async for ev in respond(llm, [{"role": "user", "content": "help"}]):
        if isinstance(ev, TextDelta) and splitter.push(ev.text) and first_at is None:
            first_at = time.perf_counter() - t0
    total = time.perf_counter() - t0
    assert first_at is not None and first_at < total / 4  # TTS can start on "Sure, I can help."


async def test_a_long_conversation_goes_out_as_it_is_without_stalling_the_loop(server: FakeOpenAI) -> None:
    """Every call's media shares this loop: the request must not walk the history on it (the SDK's
    parameter transform took ~0.2 ms per message: 2,000 messages, ~0.4 s of stall)."""
    llm = OpenAILLM(model="gpt-test", base_url=server.base_url, api_key="sk-test", timeout=5,
                    extra_body={"temperature": 0.1, "seed": 7})
    history: list[dict[str, Any]] = [{"role": "system", "content": "Be brief."}]
    for i in range(1000):
        history.append({"role": "user", "content": f"Question {i} about my booking for two people?"})
        history.append({"role": "assistant", "content": None, "tool_calls": [
            {"id": f"c{i}", "type": "function", "function": {"name": "lookup", "arguments": '{"q": 1}'}}]}
            if i % 10 == 0 else {"role": "assistant", "content": f"Answer {i}."})
        if i % 10 == 0:
            history.append({"role": "tool", "tool_call_id": f"c{i}", "content": '{"ok": true}'})
    server.script = [Reply(["Fine."])]
    worst = 0.0
    done = asyncio.Event()

    async def heartbeat() -> None:
        nonlocal worst
        beat = time.perf_counter()  # from the heartbeat's own start: the set-up before it is not measured
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            worst, beat = max(worst, now - beat), now

    gc.collect()  # before the heartbeat starts: a full collection of the test process is not the request's work
    gc.disable()
    hb = asyncio.create_task(heartbeat())
    try:
        await asyncio.sleep(0.01)
        events = await collect(llm.stream(history, tools=[{"type": "function", "function": {
            "name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "integer"}}}}}]))
    finally:
        gc.enable()
        done.set()
        await hb
        await llm.aclose()
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Fine."]
    req = server.requests[0]
    assert req["messages"] == history  # sent as given: tool calls, nulls and tool results untouched
    assert req["tools"][0]["function"]["name"] == "lookup"
    assert req["temperature"] == 0.1 and req["seed"] == 7  # extra_body over the named parameters
    assert server.headers[0]["Authorization"] == "Bearer sk-test"
    assert worst < 0.15, f"the event loop stalled {worst * 1000:.0f} ms while the request was built"
