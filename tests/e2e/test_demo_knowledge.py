"""Issue 5's promise to a newcomer: call the demo agent, ask what Switchboard does, hear the answer from its
knowledge base — with no account anywhere (local voice, local recogniser, local embeddings)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.agents.agent_speech import utterance
from tests.e2e.conftest import Server
from tests.e2e.helpers import RATE, baresip_dial, read_mono, read_stereo, wait_dump, write_mono

pytestmark = [pytest.mark.sip]


async def test_asking_the_demo_agent_what_switchboard_does(server: Server, workdir: Path) -> None:
    kbs = await server.ok("GET", "/knowledge-bases")
    assert kbs and all(kb["status"] == "complete" for kb in kbs), kbs
    question = np.concatenate([np.zeros(int(6.0 * RATE), np.int16),  # the greeting plays first
                               utterance("what does switchboard do", rate=RATE, pad_s=0.1),
                               np.zeros(int(9.0 * RATE), np.int16)])  # room for the answer
    seconds = len(question) / RATE
    seen = await server.call_ids()
    proc, dump_dir = await baresip_dial(workdir, server.demo_uri, write_mono(workdir / "ask.wav", question),
                                        limit=seconds + 20)
    try:
        live = await server.wait_new_call(seen, direction="inbound")
        call = await server.wait_call(live["call_id"], {"completed", "failed"}, timeout=seconds + 20)
        heard_path = await wait_dump(dump_dir)
    finally:
        await proc.stop()
    turns = [(t["role"], t["content"]) for t in call["transcript"]]
    assert ("user", "what does switchboard do") in turns, turns
    answer = turns[turns.index(("user", "what does switchboard do")) + 1]
    assert answer[0] == "agent" and "telephony server" in answer[1].lower(), turns
    assert "don't know" not in answer[1]
    # the answer was spoken: the agent channel carries speech after the question
    row = await server.row(call["call_id"])
    _, agent_channel, rate = read_stereo(Path(row["recording_path"]))
    t = next(x for x in call["transcript"] if x["role"] == "agent" and x["content"] == answer[1])
    spoken = agent_channel[int(t["start_ms"] / 1000 * rate):int(t["end_ms"] / 1000 * rate)]
    assert len(spoken) > rate and np.sqrt(np.mean(spoken.astype(float) ** 2)) > 300
    heard, _ = read_mono(heard_path)
    assert np.abs(heard[int((t["start_ms"] / 1000 + 0.3) * RATE):]).max() > 1000  # and the caller heard it
    metrics = await server.ok("GET", f"/calls/{call['call_id']}/metrics")
    assert metrics["retrieval_ms"]["p50"] is not None and metrics["turns"] >= 1
