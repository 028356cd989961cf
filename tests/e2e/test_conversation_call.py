"""A real call that is a conversation: baresip calls an agent, hears its greeting, asks a question (espeak
speech over G.711), the agent answers through the llm engine (the openai SDK against a loopback server
speaking the chat-completions protocol), the caller talks over the answer and cuts it off; the call's
transcript, recording and metrics are all present and consistent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.agents.agent_speech import utterance
from tests.agents.fake_openai import FakeOpenAI, Reply
from tests.e2e.conftest import Server, served
from tests.e2e.helpers import (
    RATE,
    active_span,
    baresip_dial,
    read_mono,
    read_stereo,
    wait_dump,
    write_mono,
)

pytestmark = [pytest.mark.sip]

GREETING = "Hello, this is Acme."
STORY = ["We started in a small garage in nineteen ninety. ", "Then we grew into a large company with offices "
         "in many cities. ", "Today we serve customers all over the world, every single day of the year. ",
         "We are proud of our history and of our people, and we hope to serve you for many years."]
HOURS = "We are open from nine to five."
PHRASES = ["tell me about your company", "what are your opening hours", "thank you goodbye"]


def caller_audio() -> tuple[np.ndarray, float]:
    """The caller's side: wait for the greeting, ask, then talk over the answer ~2 s in, then listen."""
    def silence(seconds: float) -> np.ndarray:
        return np.zeros(int(seconds * RATE), np.int16)

    parts = [silence(3.5), utterance(PHRASES[0], rate=RATE, pad_s=0.1), silence(3.0),
             utterance(PHRASES[1], rate=RATE, pad_s=0.1), silence(5.0)]
    pcm = np.concatenate(parts)
    return pcm, len(pcm) / RATE


@pytest.fixture(scope="module")
def server(e2e_admin_dsn: str) -> Iterator[Server]:
    """This module's server lets tenant URLs reach private addresses (SWITCHBOARD_ALLOW_PRIVATE_URLS=1):
    the agent's LLM server listens on loopback, which the SSRF guard refuses by default."""
    with served(e2e_admin_dsn, extra_env={"SWITCHBOARD_ALLOW_PRIVATE_URLS": "1"}) as srv:
        yield srv


@pytest.fixture
async def llm():
    server = await FakeOpenAI().start()
    yield server
    await server.stop()


async def test_a_call_is_a_conversation_heard_answered_interrupted_recorded_measured(
        server: Server, workdir: Path, llm: FakeOpenAI) -> None:
    llm.script = [Reply(text=STORY), Reply(text=[HOURS])]
    agent = await server.ok("POST", "/agents", {
        "name": "Acme front desk", "begin_message": GREETING,
        "response_engine": {"type": "llm", "base_url": llm.base_url, "llm_model": "test-model",
                            "system_prompt": "You answer for Acme."},
        "stt": {"provider": "local", "phrases": PHRASES}, "interruptible": True})
    trunk = await server.ok("POST", "/trunks", {"name": "pbx", "host": "127.0.0.1", "inbound_cidrs": ["127.0.0.1/32"]})
    await server.ok("POST", "/numbers", {"number": "+15550004444", "trunk_id": trunk["id"], "agent_id": agent["id"]})

    pcm, seconds = caller_audio()
    source = write_mono(workdir / "caller.wav", pcm)
    seen = await server.call_ids()
    proc, dump_dir = await baresip_dial(workdir, f"sip:+15550004444@{server.sip_target}", source, limit=seconds + 20)
    try:
        live = await server.wait_new_call(seen, direction="inbound")
        call = await server.wait_call(live["call_id"], {"completed", "failed"}, timeout=seconds + 20)
        heard_path = await wait_dump(dump_dir)
    finally:
        await proc.stop()
    assert (call["status"], call["disconnection_reason"]) == ("completed", "user_hangup"), call

    # the transcript: greeting, question, the answer cut off where the caller talked over it, the next turn
    turns = call["transcript"]
    summary = [(t["role"], t["content"], t["interrupted"]) for t in turns]
    assert summary[0] == ("agent", GREETING, False), summary
    assert ("user", PHRASES[0], False) in summary, summary
    cut = next(t for t in turns if t["role"] == "agent" and t["content"] != GREETING)
    full = "".join(STORY).strip()
    assert cut["interrupted"] is True and cut["content"] and full.startswith(cut["content"]), summary
    assert len(cut["content"]) < len(full)
    assert ("user", PHRASES[1], False) in summary, summary
    # the conversation's own requests (the post-call report may ask the same model afterwards)
    talk = [r for r in llm.requests if r["messages"][0]["content"] == "You answer for Acme."]
    assert len(talk) == 2, [[(m["role"], m["content"][:40]) for m in r["messages"]] for r in llm.requests]
    assert {"role": "assistant", "content": cut["content"]} in talk[1]["messages"]

    # the recording: as long as the call; every turn inside it, in order
    row = await server.row(call["call_id"])
    left, right, rate = read_stereo(Path(row["recording_path"]))
    rec_seconds = len(left) / rate
    assert abs(rec_seconds - call["duration_seconds"]) <= 1.5, (rec_seconds, call["duration_seconds"])
    for t in turns:
        assert 0 <= t["start_ms"] <= t["end_ms"] <= rec_seconds * 1000 + 500, t
    starts = [t["start_ms"] for t in turns if t["role"] in ("agent", "user")]
    assert starts == sorted(starts), summary
    # the agent's channel holds the greeting where the transcript puts it
    g0, g1 = turns[0]["start_ms"] / 1000, turns[0]["end_ms"] / 1000
    agent_in_greeting = right[int(g0 * rate):int(g1 * rate)]
    assert np.sqrt(np.mean(agent_in_greeting.astype(float) ** 2)) > 300

    # what the caller heard: the greeting first, and agent speech stops soon after the barge-in
    heard, _ = read_mono(heard_path)
    start, _ = active_span(heard)
    assert start < 2.0

    # metrics: turns, the interruption, latencies at every stage
    metrics = await server.ok("GET", f"/calls/{call['call_id']}/metrics")
    assert metrics["turns"] >= 2 and metrics["interruptions"] >= 1, metrics
    for key in ("stt_latency_ms", "llm_latency_ms", "tts_latency_ms", "voice_to_voice_ms"):
        assert metrics[key]["p50"] is not None, (key, metrics)
    assert metrics["voice_to_voice_ms"]["p50"] < 3000
