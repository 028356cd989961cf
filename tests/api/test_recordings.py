"""Recordings (auth, Range, streaming while the call goes on) and metrics."""

from __future__ import annotations

import asyncio
import uuid
import wave
from datetime import UTC, datetime, timedelta

import numpy as np

from media.recording import StereoRecorder
from store import calls as call_store


async def _call_with_recording(tenant, agent, db, tmp_path, seconds: float = 2.0):
    _, body = await tenant.post("/calls", {"to_number": "sip:bob@127.0.0.1", "agent_id": agent["id"]}, expect=201)
    call_id = uuid.UUID(body["data"]["id"])
    path = tmp_path / f"{call_id}.wav"
    rec = StereoRecorder(path, sample_rate=8000)
    t = np.arange(int(8000 * seconds)) / 8000
    rec.write(caller=(3000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16),
              agent=(3000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16))
    await call_store.transition(db, call_id, "in_progress", allowed_from=("pending",), recording_path=str(path),
                                answered_at=datetime.now(UTC) - timedelta(seconds=seconds))
    return call_id, rec, path


async def test_recording_download_with_auth_and_range(tenant, other, agent, db, tmp_path):
    call_id, rec, path = await _call_with_recording(tenant, agent, db, tmp_path)
    await rec.aclose()
    resp = await tenant.client.get(f"/api/v1/calls/{call_id}/recording", headers=tenant.headers)
    assert resp.status == 200 and resp.headers["Content-Type"] == "audio/wav"
    data = await resp.read()
    assert data == path.read_bytes()
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getframerate(), w.getnframes()) == (2, 8000, 16000)
    part = await tenant.client.get(f"/api/v1/calls/{call_id}/recording",
                                   headers={**tenant.headers, "Range": "bytes=0-43"})
    assert part.status == 206 and await part.read() == data[:44]
    assert (await tenant.client.get(f"/api/v1/calls/{call_id}/recording")).status == 401
    assert (await other.get(f"/calls/{call_id}/recording"))[0] == 404
    _, got = await tenant.get(f"/calls/{call_id}")
    assert got["data"]["recording_url"].endswith(f"/api/v1/calls/{call_id}/recording")


async def test_no_recording_is_404(tenant, agent):
    _, body = await tenant.post("/calls", {"to_number": "sip:bob@127.0.0.1", "agent_id": agent["id"]}, expect=201)
    status, body = await tenant.get(f"/calls/{body['data']['id']}/recording")
    assert status == 404 and body["error"]["message"] == "This call has no recording."


async def test_stream_follows_a_recording_while_the_call_goes_on(tenant, agent, db, tmp_path):
    call_id, rec, path = await _call_with_recording(tenant, agent, db, tmp_path, seconds=1.5)
    resp = await tenant.client.get(f"/api/v1/calls/{call_id}/recording/stream", headers=tenant.headers)
    assert resp.status == 200
    first = await resp.content.read(44)
    assert first[:4] == b"RIFF"

    async def finish_call() -> None:
        await asyncio.sleep(0.5)
        rec.write(caller=np.full(8000, 500, np.int16), agent=np.zeros(8000, np.int16))  # one more second
        await rec.aclose()
        await call_store.transition(db, call_id, "completed", allowed_from=("in_progress",),
                                    ended_at=datetime.now(UTC))

    finisher = asyncio.create_task(finish_call())
    rest = await asyncio.wait_for(resp.read(), 15)
    await finisher
    streamed = first + rest
    assert len(streamed) - 44 == (1.5 + 1.0) * 8000 * 4  # every frame, including those written while streaming


async def test_metrics_endpoint(tenant, agent, db):
    _, body = await tenant.post("/calls", {"to_number": "sip:bob@127.0.0.1", "agent_id": agent["id"]}, expect=201)
    call_id = uuid.UUID(body["data"]["id"])
    status, body = await tenant.get(f"/calls/{call_id}/metrics")
    assert status == 200 and body["data"]["turns"] == 0 and body["data"]["voice_to_voice_ms"] == {"p50": None,
                                                                                                  "p90": None}
    metrics = {"duration_seconds": 12.5, "turns": 2, "interruptions": 1, "total_tokens": 40, "packets_lost": 3,
               "jitter_ms": 1.2, "stt_latency_ms": {"p50": 2.0, "p90": 3.0}, "llm_latency_ms": {"p50": 80, "p90": 90},
               "tts_latency_ms": {"p50": 10, "p90": 12}, "voice_to_voice_ms": {"p50": 700, "p90": 750},
               "per_turn": [{"stt_latency_ms": 2.0}, {"stt_latency_ms": 3.0}]}
    await call_store.transition(db, call_id, "completed", allowed_from=("pending",), metrics=metrics)
    _, body = await tenant.get(f"/calls/{call_id}/metrics")
    data = body["data"]
    assert data["voice_to_voice_ms"] == {"p50": 700, "p90": 750} and data["packets_lost"] == 3
    assert data["turns"] == 2 and data["interruptions"] == 1 and len(data["per_turn"]) == 2
