"""The custom-LLM engine against a customer server on loopback (Retell-style LLM websocket)."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pytest

from agents.custom_llm import CustomLlmEngine, socket_url
from agents.factory import build_engine
from agents.providers.base import ProviderError, TextDelta
from agents.tools import ToolOutcome
from tests.agents.fake_custom_llm import Answer, FakeCustomLlm

DETAILS = {"call_id": "call-7", "agent_id": "agent-1", "from_number": "+15550001111", "to_number": "+15550002222",
           "direction": "inbound", "metadata": {"crm": 42}, "user_data": {"name": "Ada"}}


@pytest.fixture
async def server():
    s = await FakeCustomLlm().start()
    yield s
    await s.stop()


@pytest.fixture
async def engines():
    made: list[CustomLlmEngine] = []

    def make(url: str, **kw: Any) -> CustomLlmEngine:
        kw.setdefault("allow_private", True)
        engine = CustomLlmEngine(url, "call-7", DETAILS, **kw)
        engine.start()
        made.append(engine)
        return engine

    yield make
    for engine in made:
        await engine.aclose()


async def collect(events) -> list[Any]:
    return [ev async for ev in events]


def text(events: list[Any]) -> str:
    return "".join(ev.text for ev in events if isinstance(ev, TextDelta))


def test_the_call_id_is_the_last_path_segment():
    assert socket_url("wss://x.example/llm", "abc") == "wss://x.example/llm/abc"
    assert socket_url("wss://x.example/llm/?key=1", "a b") == "wss://x.example/llm/a%20b?key=1"


async def test_handshake_call_details_and_streamed_answer(server, engines):
    server.script = [Answer(["We are open ", "from nine ", "to five."], delay=0.15)]
    engine = engines(server.url)
    arrivals: list[tuple[float, str]] = []
    async for ev in engine.respond("when are you open"):
        if isinstance(ev, TextDelta):
            arrivals.append((time.monotonic(), ev.text))
    assert [t for _, t in arrivals] == ["We are open ", "from nine ", "to five."]
    # each chunk came out as it arrived, not at the end
    gaps = [b[0] - a[0] for a, b in zip(arrivals, arrivals[1:], strict=False)]
    assert all(g > 0.1 for g in gaps), gaps
    assert server.paths == ["/llm/call-7"]
    details = (await server.wait_for("call_details"))[0]["call"]
    assert details == DETAILS
    required = server.of("response_required")
    assert required == [{"interaction_type": "response_required", "response_id": 1,
                         "transcript": [{"role": "user", "content": "when are you open"}]}]
    assert engine.stats.ttft_ms is not None and engine.stats.ttft_ms < 1000
    update = (await server.wait_for("update_only"))[-1]
    assert update["transcript"] == [{"role": "user", "content": "when are you open"},
                                    {"role": "agent", "content": "We are open from nine to five."}]


async def test_response_ids_increase_and_stale_responses_are_dropped(server, engines):
    server.script = [Answer(["First answer."]), Answer(["Second answer."], stale=["late words for one"])]
    engine = engines(server.url)
    assert text(await collect(engine.respond("one"))) == "First answer."
    second = await collect(engine.respond("two"))
    assert text(second) == "Second answer."
    assert [m["response_id"] for m in server.of("response_required")] == [1, 2]
    assert engine.dropped == 1
    assert server.of("response_required")[1]["transcript"] == [
        {"role": "user", "content": "one"}, {"role": "agent", "content": "First answer."},
        {"role": "user", "content": "two"}]


async def test_a_reply_superseded_by_a_new_turn_is_stale(server, engines):
    server.script = [Answer(["Old news."], hold=True), Answer(["Fresh news."])]
    engine = engines(server.url)
    first = engine.respond("one")
    task = asyncio.create_task(collect(first))
    await server.wait_for("response_required")
    task.cancel()  # the caller spoke again (the conversation cancels the reply)
    with pytest.raises(asyncio.CancelledError):
        await task
    assert text(await collect(engine.respond("two"))) == "Fresh news."
    await asyncio.sleep(0.05)
    assert engine.dropped == 1  # the held answer to 1 came after 2 was asked
    assert "Old news." not in str(engine.transcript)


async def test_pings_are_answered_and_sent_without_looping(server, engines):
    engine = engines(server.url, ping_interval=0.1)
    await server.wait_connections(1)
    await server.wait_for("call_details")
    await server.send({"response_type": "ping_pong", "timestamp": 1234})
    pings = await server.wait_for("ping_pong", 4)
    assert {"interaction_type": "ping_pong", "timestamp": 1234} in pings  # the answer to the customer's ping
    ours = [p for p in pings if p["timestamp"] != 1234]
    assert len(ours) >= 3 and len({p["timestamp"] for p in ours}) == len(ours)
    # the server echoes our pings: they are not answered again, so the traffic stays at one per interval
    await asyncio.sleep(0.5)
    count = len(server.of("ping_pong"))
    assert count < 20, count
    assert engine.connections == 1


async def test_reminder_required_and_end_call(server, engines):
    server.script = [Answer(["Are you still there?", " Goodbye then."], end_call=True)]
    engine = engines(server.url)
    events = await collect(engine.remind())
    assert text(events) == "Are you still there? Goodbye then."
    outcome = events[-1]
    assert isinstance(outcome, ToolOutcome) and outcome.action == "end_call" and outcome.call.name == "end_call"
    reminder = server.of("reminder_required")[0]
    assert reminder["response_id"] == 1 and reminder["transcript"] == []


async def test_agent_interrupts_and_the_begin_message_are_pushed(engines):
    server = await FakeCustomLlm(begin="Hello from the customer.").start()
    try:
        engine = engines(server.url)
        pushes = engine.pushes()
        begin = await collect(await asyncio.wait_for(anext(pushes), 5))
        assert text(begin) == "Hello from the customer."
        await server.send({"response_type": "agent_interrupt", "interrupt_id": 1, "content": "Hold on, ",
                           "content_complete": False})
        interrupt = await asyncio.wait_for(anext(pushes), 5)
        first = await anext(interrupt)
        assert first == TextDelta("Hold on, ")  # spoken before the rest exists
        await server.send({"response_type": "agent_interrupt", "interrupt_id": 1, "content": "your order shipped.",
                           "content_complete": True, "end_call": True})
        rest = await collect(interrupt)
        assert text(rest) == "your order shipped."
        assert isinstance(rest[-1], ToolOutcome) and rest[-1].action == "end_call"
        engine.interrupted("Hold on,")  # the caller cut it short
        update = (await server.wait_for("update_only", 3))[-1]
        assert update["transcript"] == [{"role": "agent", "content": "Hello from the customer."},
                                        {"role": "agent", "content": "Hold on,"}]
    finally:
        await server.stop()


async def test_connection_refused_is_a_retryable_provider_error(engines):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    engine = engines(f"ws://127.0.0.1:{port}/llm", connect_timeout=1.0)
    with pytest.raises(ProviderError) as err:
        await collect(engine.respond("hello"))
    assert err.value.retryable and err.value.reason == "connect_failed"


async def test_private_addresses_are_refused_unless_allowed(engines):
    engine = engines("ws://localhost:9/llm", allow_private=False)
    with pytest.raises(ProviderError) as err:
        await collect(engine.respond("hello"))
    assert not err.value.retryable and err.value.reason == "forbidden_address"


async def test_a_drop_mid_reply_fails_the_turn_then_reconnects(server, engines):
    server.script = [Answer(["Let me see. ", "Well", "..."], delay=0.05, drop_after=2), Answer(["Back again."])]
    engine = engines(server.url)
    got: list[Any] = []
    with pytest.raises(ProviderError) as err:
        async for ev in engine.respond("one"):
            got.append(ev)
    assert err.value.retryable and err.value.reason == "connection_closed"
    assert text(got) == "Let me see. Well"
    await server.wait_connections(2)
    assert text(await collect(engine.respond("two"))) == "Back again."
    assert engine.connections == 2
    last = server.received[-1]
    assert last[0] == 2 and last[1]["transcript"][-1] == {"role": "user", "content": "two"}


async def test_a_silent_server_is_dropped_and_reconnected_with_auto_reconnect(engines):
    server = await FakeCustomLlm(answer_pings=False).start()
    try:
        engine = engines(server.url, ping_interval=0.1, ping_timeout=0.4)
        await server.wait_connections(2, limit=5)
        # the server counts a connection when it accepts it, the engine once its side of the handshake is done
        deadline = time.monotonic() + 5
        while engine.connections < 2:
            assert time.monotonic() < deadline, f"the engine reconnected {engine.connections - 1} times"
            await asyncio.sleep(0.01)
    finally:
        await server.stop()


async def test_factory_builds_it_for_custom_llm_agents(server):
    agent = {"response_engine": {"type": "custom-llm", "llm_websocket_url": server.url}}

    async def keys(provider_type: str, provider_name: str) -> str | None:
        return None

    engine = await build_engine(agent, {}, keys=keys, allow_private_tools=True, call=DETAILS)
    try:
        assert isinstance(engine, CustomLlmEngine)
        await server.wait_connections(1)
        assert server.paths == ["/llm/call-7"]
    finally:
        await engine.aclose()
