"""The server process dies (SIGKILL) or is asked to stop (SIGTERM) with a call up."""

from __future__ import annotations

import asyncio
import signal
import time
import wave
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ENDED, Server
from tests.e2e.helpers import (
    baresip_dial,
    caller_tone_wav,
    file_size,
    frame_rms,
    read_mono,
    read_stereo,
    tone_uac,
    uac_to,
    wait_dump,
)
from tests.support.sip_peers import running, scenario

pytestmark = [pytest.mark.sip]


async def short_demo_call(server: Server, workdir: Path) -> dict[str, Any]:
    """A finished call (sipp to sip:demo@…, 1.5 s of tone, BYE)."""
    seen = await server.call_ids()
    sf = tone_uac(workdir, "demo", hold_ms=1500)
    async with running(uac_to(sf, server.sip_target, "demo"), cwd=workdir, limit=20, name="sipp") as sipp:
        result = await sipp.wait(15)
    assert result.rc == 0, result.stdout[-2000:]
    call = await server.wait_new_call(seen, direction="inbound")
    done = await server.wait_call(call["call_id"], timeout=10)
    assert (done["status"], done["disconnection_reason"]) == ("completed", "user_hangup"), done
    return done


async def live_demo_call(server: Server, workdir: Path, seconds: float) -> tuple[Any, dict[str, Any], Path]:
    """baresip calls the demo agent with a ``seconds`` long WAV; returns once the call is in progress."""
    seen = await server.call_ids()
    source = caller_tone_wav(workdir / f"caller-{seconds:.0f}s.wav", seconds)
    proc, dump_dir = await baresip_dial(workdir, server.demo_uri, source, limit=seconds + 20)
    new = await server.wait_new_call(seen, direction="inbound")
    live = await server.wait_call(new["call_id"], {"in_progress", *ENDED})
    assert live["status"] == "in_progress", live
    return proc, live, dump_dir


async def wait_recording_bytes(path: Path, size: int, timeout: float = 10.0) -> None:  # noqa: ASYNC109 - a polling deadline
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if file_size(path) >= size:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{path} did not grow to {size} bytes")


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def snapshot(server: Server) -> dict[str, Any]:
    """Everything but the live call, to compare across the crash."""
    return {
        "orgs": await server.sql("SELECT * FROM organizations ORDER BY id"),
        "keys": await server.sql("SELECT * FROM api_keys ORDER BY id"),
        "agents": await server.sql("SELECT * FROM agents ORDER BY id"),
    }


async def test_kill_9_mid_call_then_restart_closes_the_call(server_factory: Callable[..., Server],
                                                            workdir: Path) -> None:
    srv = await asyncio.to_thread(server_factory)
    earlier = await short_demo_call(srv, workdir)
    earlier_row = await srv.row(earlier["call_id"])
    earlier_events = await srv.events(earlier["call_id"])
    before = await snapshot(srv)

    peer, live, _ = await live_demo_call(srv, workdir, 30)
    try:
        recording = Path((await srv.row(live["call_id"]))["recording_path"])
        await wait_recording_bytes(recording, 44 + 2 * 8000 * 4)  # ≥ 2 s of stereo audio on disk
        srv.kill()
        killed_at = datetime.now(UTC)
    finally:
        await peer.stop()  # the softphone dies too: no BYE reaches anyone
    orphan = await srv.row(live["call_id"])
    assert orphan["status"] == "in_progress" and orphan["ended_at"] is None  # nobody closed it

    await asyncio.to_thread(srv.start)  # same database, data dir, ports and worker id
    closed = await srv.call(live["call_id"])
    assert (closed["status"], closed["hangup_cause"]) == ("completed", "SYSTEM_SHUTDOWN"), closed
    assert closed["ended_at"] and closed["answered_at"] and closed["disconnection_reason"] == "system_shutdown"
    # it ended at its last evidence of life (the recording's last write), not at the restart: the
    # downtime is not billed as call time
    ended, answered = ts(closed["ended_at"]), ts(closed["answered_at"])
    assert answered < ended <= killed_at, (closed, killed_at)
    assert closed["duration_seconds"] <= (killed_at - answered).total_seconds() + 1, closed
    history = [e["status"] for e in await srv.events(live["call_id"]) if e["kind"] == "status"]
    assert history[-1] == "completed" and history.count("completed") == 1, history

    # its recording was repaired at start: a readable WAV whose header covers the audio on disk
    with wave.open(str(recording), "rb") as w:
        frames, channels = w.getnframes(), w.getnchannels()
    assert channels == 2 and frames >= 2 * 8000, frames
    assert file_size(recording) == 44 + frames * 4
    left, _right, rate = read_stereo(recording)
    assert frame_rms(left[rate:]).mean() > 500  # the caller's tone is in it

    # nothing else changed: the earlier call, its history, the tenant, its key (still accepted)
    assert await srv.row(earlier["call_id"]) == earlier_row
    assert await srv.events(earlier["call_id"]) == earlier_events
    assert await snapshot(srv) == before
    assert (await srv.call(earlier["call_id"]))["status"] == "completed"
    # and the restarted server takes calls again
    await short_demo_call(srv, workdir)


async def test_sigterm_drains_refuses_new_calls_and_exits_zero(server_factory: Callable[..., Server],
                                                               workdir: Path) -> None:
    srv = await asyncio.to_thread(server_factory, extra_env={"SWITCHBOARD_DRAIN_TIMEOUT": "40"})
    agent_id = (await srv.ok("GET", "/agents"))[0]["id"]
    seconds = 8.0
    peer, live, dump_dir = await live_demo_call(srv, workdir, seconds)
    try:
        seen = await srv.call_ids()
        srv.signal(signal.SIGTERM)
        # the signal is handled asynchronously: /health says when the worker drains (a call POSTed before that
        # is accepted and dialled, and the drain waits for it: to port 9 that is the 32 s INVITE timeout)
        deadline = time.monotonic() + 10
        while True:
            code, body = await srv.api("GET", "/health")
            if body["data"]["checks"].get("accepting_calls") == "down" or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert (code, body["data"]["status"], body["data"]["checks"]["accepting_calls"]) == (503, "degraded", "down")
        code, body = await srv.api("POST", "/calls", {"to_number": "sip:x@127.0.0.1:9", "agent_id": agent_id})
        assert code == 503, body
        assert body["error"]["message"]

        # a new INVITE is refused (486 on the wire: the engine's limit) and recorded with its reason
        sf = scenario("uac_expect_reject.xml", workdir, STATUS="486", UA="sipp-e2e")
        async with running(uac_to(sf, srv.sip_target, "demo"), cwd=workdir, limit=20, name="sipp") as sipp:
            assert (await sipp.wait(15)).rc == 0
        refused = await srv.wait_new_call(seen, direction="inbound", timeout=5)
        assert (refused["status"], refused["disconnection_reason"]) == ("failed", "draining"), refused
        assert (await srv.row(refused["call_id"]))["sip_status"] == 503

        # the live call goes on to its natural end (the caller's WAV), then the process exits 0
        assert srv.proc is not None and srv.proc.poll() is None
        done = await srv.wait_row(live["call_id"], timeout=seconds + 10)
        rc = await asyncio.to_thread(srv.wait_exit, 30)
        heard = await wait_dump(dump_dir)
    finally:
        await peer.stop()
    assert rc == 0, srv.logs()
    assert (done["status"], done["hangup_cause"], done["disconnection_reason"]) == \
        ("completed", "NORMAL_CLEARING", "user_hangup"), done
    duration = (done["ended_at"] - done["answered_at"]).total_seconds()
    assert seconds - 1.5 < duration < seconds + 1.5, duration  # not cut short by the SIGTERM
    pcm, _ = read_mono(heard)
    assert frame_rms(pcm).max() > 1000  # the caller heard the agent
    assert not await srv.sql("SELECT id FROM calls WHERE status IN ('pending', 'ringing', 'in_progress')")
