"""Speculative replies on the real runtime (media tick with Silero VAD, endpointer, conversation, the
Deepgram client against the Deepgram-protocol test server, the llm engine against the OpenAI-protocol test
server, espeak-ng): the reply is prepared at a short pause, spoken only once the endpointer confirms the
end of the turn, and thrown away — unheard, and forgotten by the model — when the caller goes on."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from tests.agents.fake_openai import FakeOpenAI, Reply
from tests.providers.fake_deepgram import FakeDeepgram, Say
from tests.runtime.conftest import agent_config, silence, speech


@pytest.fixture
async def llm():
    server = await FakeOpenAI().start()
    yield server
    await server.stop()


@pytest.fixture
async def deepgram(monkeypatch):
    server = await FakeDeepgram().start()
    monkeypatch.setenv("DEEPGRAM_BASE_URL", server.base_url)
    monkeypatch.setenv("DEEPGRAM_API_KEY", server.key)
    yield server
    await server.stop()


def cloud_agent(llm: FakeOpenAI) -> dict:
    return agent_config(response_engine={"type": "llm", "base_url": llm.base_url, "llm_model": "test-model",
                                         "system_prompt": "Be brief."},
                        stt={"provider": "deepgram"}, begin_message=None, first_speaker="user")


def voiced_writes(call) -> list[float]:
    """Monotonic times at which the engine was handed agent audio (not silence padding)."""
    times: list[float] = []
    call.on_write = lambda pcm: times.append(time.monotonic()) if np.abs(pcm).max(initial=0) > 1000 else None
    return times


def turn_events(call) -> list[tuple[str, float]]:
    """(kind, monotonic time) of every turn decision the conversation is handed (not USER_SILENT, the cue
    at each dip of the voice that sends the audio so far on to the recogniser)."""
    seen: list[tuple[str, float]] = []
    conv = call.session.conversation
    handle = conv.on_turn_event

    def record(event):
        if event.kind.value != "user_silent":
            seen.append((event.kind.value, time.monotonic()))
        handle(event)

    conv.on_turn_event = record
    return seen


async def until(cond, limit: float = 20.0) -> None:
    deadline = time.monotonic() + limit
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def test_a_pause_speculates_the_caller_goes_on_and_the_speculation_is_discarded(start_call, llm, deepgram):
    deepgram.script = [Say("I would like to book a table"), Say("and maybe tomorrow evening")]
    # whichever request reaches the model first (the speculation may be dropped before its request is sent)
    llm.script = [Reply(["Booked for two, tomorrow."], first_delay=0.2), Reply(["Booked for two, tomorrow."])]
    call = await start_call(cloud_agent(llm))
    writes = voiced_writes(call.call)
    await until(lambda: call.session.conversation is not None)
    events = turn_events(call)
    first, second = speech("I would like to book a table"), speech("and maybe tomorrow evening")
    call.call.say(first)  # the 0.1 s padding of each part: a 0.2 s mid-sentence pause; what the VAD calls
    # silence (the words' quiet ends included, ~0.45 s) lasts longer than speculate_ms and shorter than the
    # 550 ms that end a turn after words that read as finished (measured: with 0.1 s more it is ~0.56 s)
    call.call.say(second)
    call.call.say(silence(2.5))
    await until(lambda: call.call.rx_started_at is not None)
    caller_done = call.call.rx_started_at + (len(first) + len(second)) / 8000
    turns = await call.wait_turns(2)
    assert [(t["role"], t["content"]) for t in turns[:2]] == [
        ("user", "I would like to book a table and maybe tomorrow evening"), ("agent", "Booked for two, tomorrow.")]
    conv = call.session.conversation
    assert conv.speculations >= 2 and conv.speculations_wasted >= 1 and conv.speculations_used == 1
    # the model was asked about the first half at the pause, then forgot it: one user message, the whole turn
    last = llm.requests[-1]["messages"]
    assert [m["content"] for m in last if m["role"] == "user"] == [
        "I would like to book a table and maybe tomorrow evening"]
    assert not any(m["role"] == "assistant" for m in last)  # nor a reply it never gave
    # nothing of the discarded reply was heard; the kept one only after the caller finished and the
    # endpointer confirmed the end
    assert [k for k, _ in events] == ["user_started_speaking", "user_paused", "user_resumed", "user_paused",
                                      "user_stopped_speaking"]
    assert writes and min(writes) >= events[-1][1] > caller_done


async def test_a_finished_sentence_is_answered_from_the_speculation_once_confirmed(start_call, llm, deepgram):
    deepgram.script = [Say("what are your opening hours")]
    llm.script = [Reply(["We are open from nine to five."])]
    call = await start_call(cloud_agent(llm))
    writes = voiced_writes(call.call)
    await until(lambda: call.session.conversation is not None)
    events = turn_events(call)
    said = speech("what are your opening hours")
    call.call.say(said)
    call.call.say(silence(2.5))
    turns = await call.wait_turns(2)
    assert [(t["role"], t["content"]) for t in turns[:2]] == [
        ("user", "what are your opening hours"), ("agent", "We are open from nine to five.")]
    conv = call.session.conversation
    assert conv.speculations == 1 and conv.speculations_used == 1 and conv.speculations_wasted == 0
    assert len(llm.requests) == 1  # the speculative request was the reply: not asked twice
    assert deepgram.seen[-1].query["sample_rate"] == "8000"  # the G.711 line's audio as it is, not resampled
    kinds = [k for k, _ in events]
    assert kinds == ["user_started_speaking", "user_paused", "user_stopped_speaking"]
    paused_at, stopped_at = events[1][1], events[2][1]
    # the words read as a finished question: the end is confirmed at 550 ms of silence, not 600 (it was
    # announced as a pause at 100 ms)
    assert stopped_at - paused_at == pytest.approx(0.45, abs=0.1)
    assert min(writes) >= stopped_at  # prepared at the pause, spoken only once the end is confirmed
    call.call.remote_hangup()
    row = await call.ended()
    assert row["metrics"]["turns"] == 1 and row["metrics"]["voice_to_voice_ms"]["p50"] is not None



async def test_words_that_stop_mid_sentence_hold_the_turn_through_a_longer_pause(start_call, llm, deepgram):
    deepgram.script = [Say("my account number is"), Say("four five six")]
    llm.script = [Reply(["Thanks, I found your account."]), Reply(["Thanks, I found your account."]),
                  Reply(["Thanks, I found your account."])]
    call = await start_call(cloud_agent(llm))
    writes = voiced_writes(call.call)
    await until(lambda: call.session.conversation is not None)
    events = turn_events(call)
    first, second = speech("my account number is"), speech("four five six")
    call.call.say(first)
    call.call.say(silence(0.2))  # the VAD's silence, with the parts' padding and the words' quiet ends,
    # ~0.8 s (measured): past the usual 600 ms end of a turn, short of 1000
    call.call.say(second)
    call.call.say(silence(2.5))
    await until(lambda: call.call.rx_started_at is not None)
    caller_done = call.call.rx_started_at + (len(first) + int(0.2 * 8000) + len(second)) / 8000
    turns = await call.wait_turns(2)
    # "… is" cannot end a sentence: the endpointer waited 1000 ms, the caller went on, one turn
    assert [(t["role"], t["content"]) for t in turns[:2]] == [
        ("user", "my account number is four five six"), ("agent", "Thanks, I found your account.")]
    kinds = [k for k, _ in events]
    assert kinds == ["user_started_speaking", "user_paused", "user_resumed", "user_paused", "user_stopped_speaking"]
    assert events[2][1] - events[1][1] > 0.55  # the pause lasted past where 600 ms would have ended it
    # the turn ends on a number (digits come in groups): the usual 600 ms
    assert events[4][1] - events[3][1] == pytest.approx(0.5, abs=0.1)
    assert writes and min(writes) >= events[-1][1] > caller_done
