"""Conversations on the real runtime: heard, transcribed, answered, interruptible, recorded, measured."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from tests.agents.fake_openai import Fail, FakeOpenAI, Reply
from tests.runtime.conftest import agent_config, silence, speech

PHRASES = ["what are your opening hours", "tell me about your company", "thank you goodbye"]


@pytest.fixture
async def llm():
    server = await FakeOpenAI().start()
    yield server
    await server.stop()


def llm_agent(server: FakeOpenAI, **fields):
    return agent_config(response_engine={"type": "llm", "base_url": server.base_url, "llm_model": "test-model",
                                         "system_prompt": "You answer for Acme. Be brief."},
                        stt={"provider": "local", "phrases": PHRASES}, **fields)


def energy(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) if len(pcm) else 0.0


async def test_greeting_question_answer_transcript_and_metrics(start_call, llm, db):
    llm.script = [Reply(text=["We are open ", "from nine to five. ", "Anything else?"], first_delay=0.05)]
    call = await start_call(llm_agent(llm, begin_message="Hello {{user.name}}, this is Acme."),
                            user_data={"name": "Ada"})
    greeting = (await call.wait_turns(1))[0]
    assert (greeting["role"], greeting["content"]) == ("agent", "Hello Ada, this is Acme.")
    assert greeting["interrupted"] is False and greeting["end_ms"] > greeting["start_ms"] + 1000
    call.call.say(speech("what are your opening hours"))
    turns = await call.wait_turns(3)
    assert [(t["role"], t["content"]) for t in turns[1:3]] == [
        ("user", "what are your opening hours"), ("agent", "We are open from nine to five. Anything else?")]
    user, reply = turns[1], turns[2]
    assert greeting["end_ms"] <= user["start_ms"] < user["end_ms"] <= reply["start_ms"] < reply["end_ms"]
    sent = llm.requests[0]["messages"]
    assert sent[0] == {"role": "system", "content": "You answer for Acme. Be brief."}
    assert {"role": "assistant", "content": "Hello Ada, this is Acme."} in sent
    assert sent[-1] == {"role": "user", "content": "what are your opening hours"}
    heard = call.call.heard_audio()
    assert energy(heard) > 300  # the caller heard the agent
    await asyncio.sleep(0.5)
    call.call.remote_hangup()
    row = await call.ended()
    m = row["metrics"]
    assert row["status"] == "completed" and row["disconnection_reason"] == "user_hangup"
    assert m["turns"] == 1 and m["total_tokens"] == 19 and m["interruptions"] == 0
    for key in ("stt_latency_ms", "llm_latency_ms", "tts_latency_ms", "voice_to_voice_ms"):
        assert m[key]["p50"] is not None and m[key]["p50"] >= 0, (key, m)
    # voice to voice includes the 600 ms end-of-speech silence; the rest is the pipeline and providers
    assert 550 < m["voice_to_voice_ms"]["p50"] < 2500, m


async def test_the_greeting_is_synthesised_once_for_every_call_of_the_agent(start_call, deps, llm):
    agent = llm_agent(llm, begin_message="Hello {{user.name}}, this is Acme.")
    calls = []
    for _ in range(2):
        call = await start_call(agent, user_data={"name": "Ada"})
        greeting = (await call.wait_turns(1))[0]
        assert greeting["content"] == "Hello Ada, this is Acme." and greeting["end_ms"] > greeting["start_ms"] + 1000
        calls.append(call)
    assert (deps.phrases.misses, deps.phrases.hits) == (1, 1)  # the second call's greeting came from the cache
    voiced = [sum(energy(f) > 300 for f in np.array_split(h, max(1, len(h) // 160)))
              for h in (c.call.heard_audio() for c in calls)]  # 20 ms frames with the voice in them
    assert voiced[0] > 50 and abs(voiced[1] - voiced[0]) <= 3, voiced  # the second caller heard all of it
    other = await start_call(agent, user_data={"name": "Bob"})  # another text: synthesised
    assert (await other.wait_turns(1))[0]["content"] == "Hello Bob, this is Acme."
    assert (deps.phrases.misses, deps.phrases.hits) == (2, 1)


async def test_barge_in_cuts_the_agent_and_keeps_only_what_was_heard(start_call, llm):
    story = ["We started in a small garage in nineteen ninety. ", "Then we grew into a large company with offices "
             "in many cities. ", "Today we serve customers all over the world, every single day of the year. ",
             "We are proud of our history and of our people."]
    llm.script = [Reply(text=story), Reply(text=["We are open nine to five."])]
    call = await start_call(llm_agent(llm, begin_message=None))
    call.call.say(speech("tell me about your company"))
    await call.wait_turns(1, role="user")
    await asyncio.sleep(2.5)  # the agent is a couple of sentences into its story
    call.call.say(speech("what are your opening hours"))
    turns = await call.wait_turns(4)
    agent_turns = [t for t in turns if t["role"] == "agent"]
    cut = agent_turns[0]
    full = "".join(story).strip()
    assert cut["interrupted"] is True
    assert cut["content"] and len(cut["content"]) < len(full) and full.startswith(cut["content"])
    assert cut["end_ms"] - cut["start_ms"] < 6000
    second = llm.requests[1]["messages"]
    assert {"role": "assistant", "content": cut["content"]} in second  # the model knows what was heard
    assert [t["content"] for t in turns if t["role"] == "user"][-1] == "what are your opening hours"
    call.call.remote_hangup()
    row = await call.ended()
    assert row["metrics"]["interruptions"] == 1


async def test_agents_that_are_not_interruptible_ignore_speech_while_talking(start_call):
    call = await start_call(agent_config(begin_message="Welcome to Acme. Our offices are open from nine in the "
                                         "morning until five in the evening, Monday to Friday.",
                                         interruptible=False, stt={"provider": "local", "phrases": PHRASES}))
    await asyncio.sleep(1.0)
    call.call.say(speech("what are your opening hours"))  # over the agent: ignored
    greeting = (await call.wait_turns(1))[0]
    assert greeting["interrupted"] is False and greeting["content"].endswith("Monday to Friday.")
    call.call.say(silence(0.5))
    call.call.say(speech("tell me about your company"))  # after it: a turn like any other
    turns = await call.wait_turns(3)
    assert [(t["role"], t["content"]) for t in turns[1:]] == [
        ("user", "tell me about your company"), ("agent", "Sorry, I don't know that yet.")]


async def test_end_call_tool_hangs_up_after_speaking(start_call, llm):
    llm.script = [Reply(text=["Goodbye, have a nice day."], tool_calls=[("end_call", {"reason": "done"})])]
    call = await start_call(llm_agent(llm, begin_message=None, tools=[{"type": "end_call"}]))
    call.call.say(speech("thank you goodbye"))
    row = await call.ended(limit=20)
    assert row["disconnection_reason"] == "agent_hangup"
    turns = await call.turns()
    assert [t["role"] for t in turns] == ["user", "agent", "tool"] or [t["role"] for t in turns] == ["user", "tool", "agent"]
    tool = next(t for t in turns if t["role"] == "tool")
    assert tool["tool_call"]["name"] == "end_call"
    assert next(t for t in turns if t["role"] == "agent")["content"] == "Goodbye, have a nice day."


async def test_dtmf_rules_act_on_received_digits(start_call):
    call = await start_call(agent_config(begin_message=None, dtmf_rules=[
        {"digits": "1", "action": "say", "text": "You pressed one."}, {"digits": "9", "action": "hangup"}]))
    call.call.press("1")
    turns = await call.wait_turns(1)
    assert turns[0]["content"] == "You pressed one."
    call.call.press("9")
    row = await call.ended()
    assert row["disconnection_reason"] == "agent_hangup" and row["metrics"]["dtmf_received"] == "19"


async def test_inactivity_reminder_then_hangup(start_call):
    call = await start_call(agent_config(begin_message=None, inactivity_timeout_seconds=1.5,
                                         inactivity_action="reminder"))
    turns = await call.wait_turns(1, limit=10)
    assert turns[0]["content"] == "Are you still there?"
    other = await start_call(agent_config(begin_message=None, inactivity_timeout_seconds=1.0,
                                          inactivity_action="hangup"))
    row = await other.ended(limit=10)
    assert row["disconnection_reason"] == "inactivity"


async def test_provider_failure_is_an_apology_not_silence(start_call, llm):
    llm.script = [Fail(503, "overloaded")]
    call = await start_call(llm_agent(llm, begin_message=None))
    call.call.say(speech("what are your opening hours"))
    turns = await call.wait_turns(3)
    roles = [t["role"] for t in turns]
    assert roles[0] == "user" and "system" in roles
    assert "provider error" in next(t for t in turns if t["role"] == "system")["content"]
    assert next(t for t in turns if t["role"] == "agent")["content"].startswith("Sorry")


async def test_retrieval_engine_without_knowledge_says_its_fallback(start_call):
    call = await start_call(agent_config(begin_message=None, stt={"provider": "local", "phrases": PHRASES},
                                         response_engine={"type": "retrieval",
                                                          "fallback_message": "I cannot answer that yet."}))
    call.call.say(speech("what are your opening hours"))
    turns = await call.wait_turns(2)
    assert turns[1]["content"] == "I cannot answer that yet."
