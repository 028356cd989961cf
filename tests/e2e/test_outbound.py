"""Outbound calls placed through POST /calls to sipp UASes: outcomes, status history, audio, control."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.e2e.conftest import ANSWER_TIMEOUT, SETUP_TIMEOUT, Server
from tests.e2e.helpers import frame_rms, read_stereo, recording_file, uas
from tests.support.sip_peers import HOST, free_port, running

pytestmark = [pytest.mark.sip]


GREETING = "Hello, this is Switchboard calling about your appointment tomorrow morning. Goodbye."


@pytest.fixture(scope="module")
def agent_id(server: Server) -> str:
    """An agent that greets whoever answers, without barge-in: the echoing UAS sends the greeting back,
    and an interruptible agent would take its own echo for the callee speaking and stop talking."""
    code, body = server.api_sync("POST", "/agents", {"name": "Outbound e2e", "begin_message": GREETING,
                                                     "interruptible": False})
    assert code == 201, body
    return body["data"]["id"]


async def place(server: Server, agent_id: str, port: int, user: str = "+15551230000") -> dict[str, Any]:
    call = await server.ok("POST", "/calls", {"to_number": f"sip:{user}@{HOST}:{port}", "agent_id": agent_id},
                           status=201)
    assert call["status"] == "pending" and call["direction"] == "outbound"
    return call


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def test_answered_call_completes_with_history_and_echoed_greeting(server: Server, agent_id: str,
                                                                       workdir: Path) -> None:
    """The UAS rings, answers, echoes our audio and hangs up after 3 s."""
    args, port = uas(workdir, "uas_answer_bye.xml", "-rtp_echo", HOLD_MS="3000")
    async with running(args, cwd=workdir, limit=30, name="uas") as peer:
        await asyncio.sleep(0.3)
        call = await place(server, agent_id, port)
        live = await server.wait_call(call["call_id"], {"in_progress", "completed", "failed", "busy", "no_answer"})
        assert live["status"] == "in_progress", live
        assert live["answered_at"] and not live["ended_at"]
        done = await server.wait_call(call["call_id"], timeout=15)
        result = await peer.wait(10)
    assert result.rc == 0, result.stdout[-2000:]

    assert (done["status"], done["hangup_cause"], done["disconnection_reason"]) == \
        ("completed", "NORMAL_CLEARING", "user_hangup"), done
    assert done["sip_call_id"], done
    assert ts(done["started_at"]) <= ts(done["answered_at"]) < ts(done["ended_at"])
    assert 2.0 < done["duration_seconds"] < 5.0, done["duration_seconds"]

    events = [e for e in await server.events(call["call_id"]) if e["kind"] == "status"]
    assert [e["status"] for e in events] == ["pending", "ringing", "in_progress", "completed"], events
    assert all(a["created_at"] <= b["created_at"] for a, b in zip(events, events[1:], strict=False))
    assert events[-1]["detail"]["hangup_by"] == "remote"

    # the agent spoke (right channel); the UAS echoed it back, so the caller channel (left) carries it too
    left, right, rate = read_stereo(recording_file(await server.row(call["call_id"]), server.data_dir))
    assert abs(len(left) / rate - done["duration_seconds"]) <= 1.5
    agent_rms, caller_rms = frame_rms(right, rate), frame_rms(left, rate)
    speaking = np.flatnonzero(agent_rms > 500)
    assert speaking.size > 25, "the agent did not speak (>0.5 s)"
    # allow the echo's round trip: the caller channel is loud within 200 ms after each agent frame
    echoed = [caller_rms[i: i + 11].max() > 250 for i in speaking if i + 11 <= len(caller_rms)]
    assert np.mean(echoed) > 0.8, f"only {np.mean(echoed):.0%} of the greeting came back"
    assert caller_rms[: speaking[0]].max(initial=0) < 200, "the caller channel was loud before the agent spoke"


@pytest.mark.parametrize(("scenario_name", "subst", "status", "cause", "reason"), [
    ("uas_status.xml", {"STATUS": "486", "REASON": "Busy Here"}, "busy", "USER_BUSY", "dial_busy"),
    ("uas_status.xml", {"STATUS": "603", "REASON": "Decline"}, "failed", "CALL_REJECTED", "dial_failed"),
    ("uas_status.xml", {"STATUS": "503", "REASON": "Service Unavailable"}, "failed", "NORMAL_TEMPORARY_FAILURE",
     "dial_failed"),
    ("uas_ring.xml", {}, "no_answer", "NO_ANSWER", "dial_no_answer"),
], ids=["busy", "decline", "unavailable", "no_answer"])
async def test_unanswered_outcomes(server: Server, agent_id: str, workdir: Path, scenario_name: str,
                                   subst: dict[str, str], status: str, cause: str, reason: str) -> None:
    args, port = uas(workdir, scenario_name, **subst)
    async with running(args, cwd=workdir, limit=30, name="uas") as peer:
        await asyncio.sleep(0.3)
        t0 = time.monotonic()
        call = await place(server, agent_id, port)
        done = await server.wait_call(call["call_id"], timeout=ANSWER_TIMEOUT + 10)
        elapsed = time.monotonic() - t0
        result = await peer.wait(10)  # uas_ring.xml requires our CANCEL; uas_status.xml our ACK
    assert result.rc == 0, result.stdout[-2000:]
    assert (done["status"], done["hangup_cause"], done["disconnection_reason"]) == (status, cause, reason), done
    assert done["answered_at"] is None and done["ended_at"] and done["sip_call_id"]
    assert done["duration_seconds"] in (0, 0.0, None) and done["recording_url"] is None
    if "STATUS" in subst:  # the far end's own answer, status and reason phrase, in the API and in the log
        assert done["sip_status"] == int(subst["STATUS"]), done
        assert done["error_message"] == f"{subst['STATUS']} {subst['REASON']}", done
        assert f"call {call['call_id']} {status}: {reason}" in server.logs(400)
        assert f"{subst['STATUS']} {subst['REASON']}" in server.logs(400)
    if status == "no_answer":
        assert ANSWER_TIMEOUT - 0.5 < elapsed < ANSWER_TIMEOUT + 4, elapsed
        assert done["sip_status"] is None and "not answered" in done["error_message"], done
    history = [e["status"] for e in await server.events(call["call_id"]) if e["kind"] == "status"]
    assert history == ["pending", "ringing", status], history


async def test_unreachable_fails_after_setup_timeout(server: Server, agent_id: str) -> None:
    port = free_port()  # nothing listens there
    t0 = time.monotonic()
    call = await place(server, agent_id, port)
    done = await server.wait_call(call["call_id"], timeout=SETUP_TIMEOUT + 10)
    elapsed = time.monotonic() - t0
    assert (done["status"], done["hangup_cause"], done["disconnection_reason"]) == \
        ("failed", "RECOVERY_ON_TIMER_EXPIRE", "dial_failed"), done
    assert done["answered_at"] is None and done["ended_at"]
    assert SETUP_TIMEOUT - 0.5 < elapsed < SETUP_TIMEOUT + 4, elapsed
    assert done["sip_status"] is None and "no response" in done["error_message"], done  # the local error
    assert f"call {call['call_id']} failed: dial_failed" in server.logs(400)
    history = [e["status"] for e in await server.events(call["call_id"]) if e["kind"] == "status"]
    assert history == ["pending", "failed"], history


async def test_in_call_dtmf_cancel_and_end(server: Server, agent_id: str, workdir: Path) -> None:
    """A UAS that stays up (and echoes): DTMF goes out (and comes back as received DTMF), cancel is
    refused once answered, end hangs up with api_hangup."""
    args, port = uas(workdir, "uas_answer.xml", "-rtp_echo")
    async with running(args, cwd=workdir, limit=40, name="uas") as peer:
        await asyncio.sleep(0.3)
        call = await place(server, agent_id, port)
        cid = call["call_id"]
        assert (await server.wait_call(cid, {"in_progress", "failed", "busy", "no_answer"}))["status"] == "in_progress"

        code, body = await server.api("POST", f"/calls/{cid}/cancel")
        assert code == 409, body

        code, body = await server.api("POST", f"/calls/{cid}/dtmf", {"digits": "12#"})
        assert code == 200 and body["data"]["status"] == "in_progress", body
        sent = await server.wait_event(cid, "dtmf_sent")
        assert [e["detail"]["digits"] for e in sent] == ["12#"]
        # the UAS echoes RTP, telephone-events included: they come back as received digits
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            got = [e["detail"]["digit"] for e in await server.events(cid) if e["kind"] == "dtmf_received"]
            if len(got) >= 3:
                break
            await asyncio.sleep(0.1)
        assert got == ["1", "2", "#"], got

        code, body = await server.api("POST", f"/calls/{cid}/end")
        assert code == 200, body
        done = await server.wait_call(cid, timeout=10)
        result = await peer.wait(10)  # the UAS scenario requires our BYE
    assert result.rc == 0, result.stdout[-2000:]
    assert (done["status"], done["hangup_cause"], done["disconnection_reason"]) == \
        ("completed", "NORMAL_CLEARING", "api_hangup"), done
    assert done["metrics"].get("dtmf_received") == "12#", done["metrics"]
    code, body = await server.api("POST", f"/calls/{cid}/end")
    assert code == 409, body
    code, body = await server.api("POST", f"/calls/{cid}/dtmf", {"digits": "1"})
    assert code == 409, body
