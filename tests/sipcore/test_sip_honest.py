"""Honest SIP behaviour (issue 9.8): a CANCEL racing our answer, a peer's REFER, what our answers reveal."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from sipcore import CallStatus, HangupBy, IncomingCall
from sipcore.baresip_engine import BaresipEngine
from tests.sipcore.test_sip_inbound import sipp_to
from tests.support.sip_peers import running, scenario

pytestmark = [pytest.mark.sip, pytest.mark.asyncio(loop_scope="session")]


async def test_cancel_racing_the_answer_is_a_cancellation(engine: BaresipEngine, workdir: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    """The caller CANCELs while the application is still deciding; its answer() comes too late."""
    caplog.set_level(logging.INFO, logger="sipcore")
    calls: asyncio.Queue[IncomingCall] = asyncio.Queue()
    answered_late = asyncio.Event()

    async def slow_answer(incoming: IncomingCall) -> None:
        calls.put_nowait(incoming)
        await asyncio.sleep(0.6)  # routing, a database row… meanwhile the CANCEL arrives
        await incoming.call.answer()
        answered_late.set()

    engine.set_incoming_handler(slow_answer)
    sf = scenario("uac_cancel.xml", workdir, HOLD_MS="50")
    async with running(sipp_to(engine, sf, "-s", "+15553334444", "-m", "1"), cwd=workdir, limit=20,
                       name="sipp") as sipp:
        incoming = await asyncio.wait_for(calls.get(), 10)
        end = await asyncio.wait_for(incoming.call.wait_ended(), 10)
        result = await sipp.wait(10)
    assert result.rc == 0, result.stdout[-2000:]
    assert (end.status, end.cause, end.hangup_by) == (CallStatus.CANCELED, "ORIGINATOR_CANCEL", HangupBy.REMOTE), end
    await asyncio.sleep(0.8)  # the handler's late answer() has run by now
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("sipcore")]
    assert not errors, [r.getMessage() for r in errors]
    assert any("canceled" in r.getMessage() and r.levelno == logging.INFO for r in caplog.records)
