"""On the real runtime (loopback call, media tick with Silero VAD, conversation, the Deepgram client against the
Deepgram-protocol test server): the VAD runs off the 20 ms clock, so its events can reach the conversation well
after the audio they are about. A turn whose start event comes 0.7 s late still goes to speech-to-text from
before the voice's onset, as a prompt one does."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tests.agents.fake_openai import FakeOpenAI, Reply
from tests.providers.fake_deepgram import FakeDeepgram, Say
from tests.runtime.conftest import speech
from tests.runtime.test_speculation import cloud_agent, until

GATE = threading.Event()


@pytest.fixture
def vad_executor() -> Iterator[ThreadPoolExecutor]:
    """The media loop's VAD thread, which this module can hold (GATE cleared, a job waiting on it)."""
    GATE.set()
    pool = ThreadPoolExecutor(1, thread_name_prefix="held-vad")
    yield pool
    GATE.set()
    pool.shutdown()


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


def lead_in_s(audio: bytes, rate: int) -> float:
    """Seconds before the first loud sample of what the recogniser received."""
    pcm = np.frombuffer(audio, "<i2")
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > 1000)
    assert len(loud), "no voice reached the recogniser"
    return loud[0] / rate


@pytest.mark.parametrize("held_s", [0.0, 0.7])
async def test_a_turn_whose_start_event_comes_late_reaches_stt_from_before_its_onset(
        start_call, llm, deepgram, vad_executor: ThreadPoolExecutor, held_s: float):
    deepgram.script = [Say("what are your opening hours")]
    llm.script = [Reply(text=["Nine to five."])]
    call = await start_call(cloud_agent(llm))
    await until(lambda: len(deepgram.seen) == 1)  # the recogniser is connected: the call is listening
    conv = call.session.conversation
    await until(lambda: conv._heard >= 8000)  # a second of the line's noise before the caller speaks
    said = speech("what are your opening hours")
    voice_at = np.flatnonzero(np.abs(said.astype(np.int32)) > 1000)[0] / 8000
    if held_s:
        GATE.clear()
        vad_executor.submit(GATE.wait)  # the VAD's thread is held from before the caller speaks...
    call.call.say(said)
    if held_s:
        await asyncio.sleep(voice_at + held_s)  # ...until 0.7 s past the voice's onset (within its 1 s backlog)
        GATE.set()
    turns = await call.wait_turns(2)
    assert [(t["role"], t["content"]) for t in turns] == [
        ("user", "what are your opening hours"), ("agent", "Nine to five.")]
    conn = deepgram.seen[0]
    rate = int(conn.query["sample_rate"])
    # the turn began 0.6 s before its start event on the audio clock, which fires ~0.4 s into the voice: about
    # 0.2 s of the line before the voice (0.6 s before the moment a late event arrives would start in the voice)
    assert lead_in_s(bytes(conn.audio), rate) >= 0.1
