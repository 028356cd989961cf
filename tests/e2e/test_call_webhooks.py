"""A real call (baresip on loopback) to an agent with a webhook URL: signed call_started, call_completed
and call_analyzed deliveries reach a receiver started here and pass the README's verification snippet;
the call's live socket streamed its turns while it ran and closed when it ended."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest

from tests.agents.agent_speech import utterance
from tests.agents.fake_openai import FakeOpenAI, Reply
from tests.e2e.helpers import RATE, baresip_dial, write_mono
from tests.platform.conftest import Receiver
from tests.platform.test_webhooks import readme_verify

pytestmark = [pytest.mark.sip]

QUESTION = "what are your opening hours"
ANSWER = "We are open from nine to five."
ANALYSIS = '{"summary": "The caller asked for the opening hours.", "sentiment": "neutral", ' \
           '"call_successful": true, "topic": "hours"}'


@pytest.fixture
async def llm() -> Any:
    server = await FakeOpenAI().start()
    yield server
    await server.stop()


@pytest.fixture
async def receiver() -> Any:
    found = await Receiver().start()
    yield found
    await found.stop()


async def watch(url: str) -> list[dict[str, Any]]:
    """Every message of a live socket until the server closes it."""
    got: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                got.append(json.loads(msg.data))
    return got


async def test_a_real_call_delivers_signed_webhooks_and_streams_its_live_transcript(
        server_factory: Any, workdir: Path, llm: FakeOpenAI, receiver: Receiver) -> None:
    server = server_factory(extra_env={"SWITCHBOARD_ALLOW_PRIVATE_URLS": "1"})
    llm.script = [Reply(text=[ANSWER]), Reply(text=[ANALYSIS])]
    secret = (await server.ok("POST", "/webhook-secret/rotate"))["webhook_secret"]
    agent = await server.ok("POST", "/agents", {
        "name": "Hours desk", "begin_message": "Hello, this is Acme.", "webhook_url": receiver.url + "/hook",
        "response_engine": {"type": "llm", "base_url": llm.base_url, "llm_model": "test-model"},
        "stt": {"provider": "local", "phrases": [QUESTION]},
        "post_call_analysis": {"custom_fields": [{"name": "topic", "description": "What the caller asked about"}]}})
    trunk = await server.ok("POST", "/trunks", {"name": "pbx", "host": "127.0.0.1", "inbound_cidrs": ["127.0.0.1/32"]})
    await server.ok("POST", "/numbers", {"number": "+15550007777", "trunk_id": trunk["id"], "agent_id": agent["id"]})

    pcm = np.concatenate([np.zeros(int(3.5 * RATE), np.int16), utterance(QUESTION, rate=RATE, pad_s=0.1),
                          np.zeros(int(5.0 * RATE), np.int16)])
    seconds = len(pcm) / RATE
    source = write_mono(workdir / "caller.wav", pcm)
    seen = await server.call_ids()
    proc, _ = await baresip_dial(workdir, f"sip:+15550007777@{server.sip_target}", source, limit=seconds + 20)
    try:
        call = await server.wait_new_call(seen, direction="inbound")
        call_id = call["call_id"]
        await server.wait_call(call_id, {"in_progress", "completed", "failed"})
        live = await server.ok("GET", f"/calls/{call_id}/live")
        messages = await asyncio.wait_for(watch(f"{live['websocket_url']}?session_token={live['session_token']}"),
                                          seconds + 25)
        done = await server.wait_call(call_id, {"completed", "failed"}, timeout=10)
    finally:
        await proc.stop()
    assert (done["status"], done["disconnection_reason"]) == ("completed", "user_hangup"), done

    # the live socket: connected while the call ran, turns streamed as they happened, closed at the end
    kinds = [m["type"] for m in messages]
    assert kinds[0] == "connected" and messages[0]["data"]["status"] == "in_progress", kinds
    streamed = [m["data"]["turn"] for m in messages if m["type"] == "transcript_update"]
    assert ("user", QUESTION) in [(t["role"], t["content"]) for t in streamed], messages
    assert ("agent", ANSWER) in [(t["role"], t["content"]) for t in streamed], messages
    assert messages[-1]["type"] == "call_status_update" and messages[-1]["data"]["status"] == "completed"
    updates = [m["data"] for m in messages if m["type"] == "transcript_update"]
    partial_at = next(i for i, u in enumerate(updates) if not u["final"] and u["turn"]["content"] == ANSWER)
    final_at = next(i for i, u in enumerate(updates) if u["final"] and u["turn"]["content"] == ANSWER)
    assert partial_at < final_at  # the agent's words as they start playing, then the finished turn

    # the webhooks: started, completed, analyzed (and every status change), each signed and verified
    got = await receiver.wait_for(lambda r: any(x.headers.get("X-Switchboard-Event") == "call_analyzed" for x in r),
                                  within=30)
    verify = readme_verify()
    mine = [r for r in got if r.json["call_id"] == call_id]
    events = [r.headers["X-Switchboard-Event"] for r in mine]
    for name in ("call_started", "call_completed", "call_analyzed"):
        assert events.count(name) == 1, events
    assert [r.json["data"]["status"] for r in mine if r.json["event"] == "call_status"][-1] == "completed"
    for request in mine:
        assert verify(secret, request.headers, request.body), request.headers
    analyzed = next(r.json["data"] for r in mine if r.json["event"] == "call_analyzed")
    assert any(t["content"] == ANSWER for t in analyzed["transcript"])
    assert analyzed["recording_url"] and analyzed["metrics"]["turns"] >= 1
    report = analyzed["report"]
    assert report["generated_by"] == "llm" and report["custom_fields"] == {"topic": "hours"}, report
    assert report["summary"] == "The caller asked for the opening hours."
    stored = await server.ok("GET", f"/calls/{call_id}/report")
    assert stored["status"] == "done" and stored["report"]["summary"] == report["summary"]
    deliveries = await server.ok("GET", "/webhook-deliveries", params={"call_id": call_id, "status": "delivered"})
    assert {d["event"] for d in deliveries} >= {"call_started", "call_completed", "call_analyzed", "call_status"}
    about = [line for line in server.logs(tail=100_000).splitlines() if call_id in line]
    assert about and all(f"[call={call_id}]" in line for line in about), "\n".join(about)
    metrics_text = await asyncio.to_thread(lambda: __import__("requests").get(
        server.base.removesuffix("/api/v1") + "/metrics", timeout=10).text)
    assert 'switchboard_calls_ended_total{cause="NORMAL_CLEARING",status="completed"}' in metrics_text
    assert "switchboard_media_ticks " in metrics_text and 'stage="llm"' in metrics_text
