"""Custom-LLM agents on the real runtime: the customer's server on loopback answers over its websocket."""

from __future__ import annotations

import asyncio

import pytest

from agents.conversation import APOLOGY
from tests.agents.fake_custom_llm import Answer, FakeCustomLlm
from tests.runtime.conftest import agent_config, silence, speech

PHRASES = ["what are your opening hours", "tell me about your company", "thank you goodbye"]


@pytest.fixture
async def customer():
    server = await FakeCustomLlm().start()
    yield server
    await server.stop()


def custom_agent(server: FakeCustomLlm, **fields):
    return agent_config(response_engine={"type": "custom-llm", "llm_websocket_url": server.url},
                        stt={"provider": "local", "phrases": PHRASES}, **fields)


async def test_streamed_answer_is_spoken_as_it_arrives_and_saved_whole(customer, start_call):
    # the first sentence is complete once "Anything" arrives; the rest comes 3 s later
    customer.script = [Answer(["We are open from nine to five. ", "Anything", " else?"], delay=[0.05, 3.0])]
    call = await start_call(custom_agent(customer, begin_message=None), user_data={"name": "Ada"})
    details = (await customer.wait_for("call_details"))[0]["call"]
    assert details["call_id"] == str(call.id) and customer.paths == [f"/llm/{call.id}"]
    assert details["to_number"] == "+15550003333" and details["user_data"] == {"name": "Ada"}
    call.call.say(speech("what are your opening hours"))
    turns = await call.wait_turns(2)
    assert [(t["role"], t["content"]) for t in turns] == [
        ("user", "what are your opening hours"), ("agent", "We are open from nine to five. Anything else?")]
    required = customer.of("response_required")
    assert required == [{"interaction_type": "response_required", "response_id": 1,
                         "transcript": [{"role": "user", "content": "what are your opening hours"}]}]
    update = (await customer.wait_for("update_only"))[-1]
    assert update["transcript"][-1] == {"role": "agent", "content": "We are open from nine to five. Anything else?"}
    call.call.remote_hangup()
    m = (await call.ended())["metrics"]
    assert m["turns"] == 1
    # the caller heard the first sentence long before the last chunk was even sent
    assert m["llm_latency_ms"]["p50"] < 1000, m
    assert m["voice_to_voice_ms"]["p50"] < 2500, m


async def test_a_stale_response_is_never_spoken(customer, start_call):
    customer.script = [Answer(["This stale answer must never be spoken."], hold=True),
                       Answer(["Here is the fresh answer."])]
    call = await start_call(custom_agent(customer, begin_message=None))
    call.call.say(speech("what are your opening hours"))
    await customer.wait_for("response_required")  # the customer holds its answer...
    call.call.say(silence(0.3))
    call.call.say(speech("tell me about your company"))  # ...until the caller has asked again
    turns = await call.wait_turns(3)
    assert [(t["role"], t["content"]) for t in turns] == [
        ("user", "what are your opening hours"), ("user", "tell me about your company"),
        ("agent", "Here is the fresh answer.")]
    assert [m["response_id"] for m in customer.of("response_required")] == [1, 2]
    assert call.session.conversation.engine.dropped == 1
    await asyncio.sleep(0.5)
    assert not any("stale" in t["content"] for t in await call.turns())


async def test_agent_interrupt_cuts_the_reply_and_speaks_at_once(customer, start_call):
    story = ["We started in a small garage in nineteen ninety. ", "Then we grew into a large company with offices "
             "in many cities. ", "Today we serve customers all over the world, every single day of the year."]
    customer.script = [Answer(story)]
    call = await start_call(custom_agent(customer, begin_message=None))
    call.call.say(speech("tell me about your company"))
    await call.wait_turns(1, role="user")
    await asyncio.sleep(2.0)  # the agent is into its story
    sent_ms = call.session.conversation.io.elapsed_ms()  # call time, as transcript turns have it
    await customer.send({"response_type": "agent_interrupt", "interrupt_id": 1,
                         "content": "Sorry to interrupt, your table is ready.", "content_complete": True})
    turns = await call.wait_turns(3)
    cut, news = turns[1], turns[2]
    full = "".join(story).strip()
    assert cut["role"] == "agent" and cut["interrupted"] is True
    assert cut["content"] and len(cut["content"]) < len(full) and full.startswith(cut["content"])
    assert (news["role"], news["content"], news["interrupted"]) == (
        "agent", "Sorry to interrupt, your table is ready.", False)
    assert news["start_ms"] - sent_ms < 500  # at once
    assert cut["end_ms"] <= news["start_ms"] + 100
    update = (await customer.wait_for("update_only", 2))[-1]
    assert update["transcript"] == [{"role": "user", "content": "tell me about your company"},
                                    {"role": "agent", "content": cut["content"]},
                                    {"role": "agent", "content": "Sorry to interrupt, your table is ready."}]
    call.call.remote_hangup()
    assert (await call.ended())["metrics"]["turns"] == 1  # the interrupt is not a caller turn


async def test_unprompted_agent_interrupt_with_end_call_ends_the_call(customer, start_call):
    call = await start_call(custom_agent(customer, begin_message=None))
    await customer.wait_for("call_details")
    await customer.send({"response_type": "agent_interrupt", "interrupt_id": 1, "content": "Your order has shipped.",
                         "content_complete": True, "end_call": True})
    row = await call.ended(limit=20)
    assert row["disconnection_reason"] == "agent_hangup"
    turns = await call.turns()
    agent = [t for t in turns if t["role"] == "agent"]
    assert [t["content"] for t in agent] == ["Your order has shipped."] and agent[0]["interrupted"] is False


async def test_end_call_hangs_up_after_the_reply_is_spoken(customer, start_call):
    customer.script = [Answer(["Goodbye, ", "have a nice day."], end_call=True)]
    call = await start_call(custom_agent(customer, begin_message="Hello, this is Acme."))
    await call.wait_turns(1)
    call.call.say(speech("thank you goodbye"))
    row = await call.ended(limit=20)
    assert row["disconnection_reason"] == "agent_hangup"
    turns = await call.turns()
    assert [(t["role"], t["content"]) for t in turns if t["role"] != "tool"] == [
        ("agent", "Hello, this is Acme."), ("user", "thank you goodbye"), ("agent", "Goodbye, have a nice day.")]
    assert next(t for t in turns if t["role"] == "tool")["tool_call"]["name"] == "end_call"
    assert customer.of("response_required")[0]["transcript"] == [
        {"role": "agent", "content": "Hello, this is Acme."}, {"role": "user", "content": "thank you goodbye"}]


async def test_a_dropped_connection_is_apologised_for_and_reconnected(customer, start_call):
    customer.script = [Answer(["Let me check that. ", "One"], drop_after=1), Answer(["We are back, how can I help?"])]
    call = await start_call(custom_agent(customer, begin_message=None))
    call.call.say(speech("what are your opening hours"))
    turns = await call.wait_turns(3)
    assert [t["role"] for t in turns] == ["user", "system", "agent"]
    assert turns[1]["content"].startswith("provider error: connection_closed")
    assert turns[2]["content"] == APOLOGY
    await customer.wait_connections(2)
    call.call.say(speech("tell me about your company"))
    turns = await call.wait_turns(5)
    assert [(t["role"], t["content"]) for t in turns[3:]] == [
        ("user", "tell me about your company"), ("agent", "We are back, how can I help?")]
    assert customer.received[-1][0] == 2  # asked on the new connection
