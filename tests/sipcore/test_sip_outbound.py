"""Outbound calls from the engine to real sipp UASes: outcomes, audio, DTMF."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from sipcore import (
    CallBusy,
    CallDeclined,
    CallNoAnswer,
    CallRinging,
    CallStatus,
    CallUnreachable,
    DialFailed,
    DtmfReceived,
    HangupBy,
)
from sipcore.baresip_engine import BaresipEngine
from tests.support.sip_peers import HOST, dominant_freq, free_port, running, scenario, sipp_args, tone

pytestmark = [pytest.mark.sip, pytest.mark.asyncio(loop_scope="session")]


def uas(workdir: Path, name: str, *extra: str, **subst: str) -> tuple[list[str], int]:
    port = free_port()
    sf = scenario(name, workdir, **subst)
    return sipp_args(sf, port, free_port(4), "-m", "1", *extra), port


@pytest.mark.parametrize(
    ("status", "reason", "exc", "call_status", "cause"),
    [
        (486, "Busy Here", CallBusy, CallStatus.BUSY, "USER_BUSY"),
        (603, "Decline", CallDeclined, CallStatus.FAILED, "CALL_REJECTED"),
        (404, "Not Found", DialFailed, CallStatus.FAILED, "UNALLOCATED_NUMBER"),
    ],
)
async def test_final_failure_is_classified(
    engine: BaresipEngine,
    workdir: Path,
    status: int,
    reason: str,
    exc: type[DialFailed],
    call_status: CallStatus,
    cause: str,
) -> None:
    args, port = uas(workdir, "uas_status.xml", STATUS=str(status), REASON=reason)
    async with running(args, cwd=workdir, limit=20, name="uas") as peer:
        await asyncio.sleep(0.3)
        call = await engine.dial(f"sip:+15551230000@{HOST}:{port}", answer_timeout=10)
        with pytest.raises(exc) as info:
            await call.wait_answered()
        assert (await peer.wait(10)).rc == 0
    end = info.value.end
    assert (end.status, end.cause, end.sip_status) == (call_status, cause, status)
    assert end.hangup_by is HangupBy.REMOTE and not end.answered
    assert call.sip_call_id


async def test_no_answer_sends_cancel(engine: BaresipEngine, workdir: Path) -> None:
    args, port = uas(workdir, "uas_ring.xml")
    async with running(args, cwd=workdir, limit=20, name="uas") as peer:
        await asyncio.sleep(0.3)
        call = await engine.dial(f"sip:+15551230001@{HOST}:{port}", answer_timeout=2.0)
        events = []
        async for event in call.events():
            events.append(event)
        result = await peer.wait(10)  # the UAS scenario requires the CANCEL
    assert result.rc == 0, result.stderr
    assert isinstance(events[0], CallRinging)
    end = call.end
    assert end is not None
    assert (end.status, end.cause, end.hangup_by) == (CallStatus.NO_ANSWER, "NO_ANSWER", HangupBy.LOCAL)
    with pytest.raises(CallNoAnswer):
        await call.wait_answered()


async def test_unreachable_is_classified_quickly(engine: BaresipEngine) -> None:
    """Nothing listens: no response at all. The library alone takes ~32 s
    (Timer B); the engine's setup_timeout bounds it."""
    port = free_port()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    call = await engine.dial(f"sip:+15551230002@{HOST}:{port}", setup_timeout=2.0)
    with pytest.raises(CallUnreachable) as info:
        await call.wait_answered()
    assert loop.time() - t0 < 8
    end = info.value.end
    assert (end.status, end.cause, end.sip_status) == (CallStatus.FAILED, "RECOVERY_ON_TIMER_EXPIRE", None)


async def test_answered_call_audio_and_dtmf_via_echo(engine: BaresipEngine, workdir: Path) -> None:
    """sipp answers and echoes RTP: our 440 Hz comes back (the peer received
    it), and our RFC 4733 digits come back as telephone-events (DTMF in)."""
    args, port = uas(workdir, "uas_answer.xml", "-rtp_echo")
    async with running(args, cwd=workdir, limit=30, name="uas") as peer:
        await asyncio.sleep(0.3)
        call = await engine.dial(f"sip:+15551230003@{HOST}:{port}", from_user="+15550001111")
        await call.wait_answered()
        digits: list[str] = []

        async def pump_events() -> None:
            async for event in call.events():
                if isinstance(event, DtmfReceived):
                    digits.append(event.digit)

        pump = asyncio.create_task(pump_events())
        frame = tone(440, 160)
        heard = []
        loop = asyncio.get_running_loop()
        stop = loop.time() + 2.5
        while loop.time() < stop:
            if call.tx_buffered < 800:
                call.write_pcm(frame)
            heard.append(call.read_pcm())
            await asyncio.sleep(0.02)
        await call.send_dtmf("19#")
        await asyncio.sleep(1.0)
        stats = call.rtp_stats()
        await call.hangup()
        end = await call.wait_ended()
        await pump
        assert (await peer.wait(10)).rc == 0
    pcm = np.concatenate(heard)
    assert abs(dominant_freq(pcm[-8000:], 8000) - 440) < 20
    assert digits == ["1", "9", "#"]
    assert (end.status, end.cause, end.hangup_by) == (CallStatus.COMPLETED, "NORMAL_CLEARING", HangupBy.LOCAL)
    assert stats.rx_lost == 0


async def test_second_engine_in_process_is_refused(engine: BaresipEngine) -> None:
    """Gotcha: one baresip Runtime per process — a second engine fails cleanly
    and the first keeps working."""
    from sipcore import EngineConfig, EngineError

    other = BaresipEngine()
    with pytest.raises(EngineError):
        await other.start(EngineConfig(host=HOST, port=free_port()))
    assert engine.active_call_count == 0
