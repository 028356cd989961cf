"""Every way a call ends writes its final status and cause once, on real SIP (sipp and baresip peers)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Server
from tests.e2e.helpers import uas
from tests.support.sip_peers import HOST, running

pytestmark = [pytest.mark.sip]

LIVE = {"in_progress", "completed", "failed", "busy", "no_answer", "canceled"}


def agent(server: Server, **fields: Any) -> str:
    code, body = server.api_sync("POST", "/agents", {"name": "Endings e2e", "begin_message": None,
                                                     "interruptible": False, **fields})
    assert code == 201, body
    return body["data"]["id"]


async def place(server: Server, agent_id: str, port: int) -> str:
    call = await server.ok("POST", "/calls", {"to_number": f"sip:+15551230000@{HOST}:{port}",
                                              "agent_id": agent_id}, status=201)
    return call["call_id"]


async def test_a_dtmf_hangup_rule_ends_the_call_and_end_then_answers_409(server: Server, workdir: Path) -> None:
    """The reported fault: the agent hangs up (a DTMF `hangup` rule), the SIP leg goes, and the call must
    not stay in_progress; POST /end afterwards is a 409, never a 5xx."""
    agent_id = agent(server, dtmf_rules=[{"digits": "9", "action": "hangup"}])
    args, port = uas(workdir, "uas_answer.xml", "-rtp_echo")
    async with running(args, cwd=workdir, limit=40, name="uas") as peer:
        await asyncio.sleep(0.3)
        cid = await place(server, agent_id, port)
        assert (await server.wait_call(cid, LIVE))["status"] == "in_progress"
        code, body = await server.api("POST", f"/calls/{cid}/dtmf", {"digits": "9"})  # echoed back to us
        assert code == 200, body
        done = await server.wait_call(cid, timeout=10)
        result = await peer.wait(10)  # the UAS scenario requires our BYE
    assert result.rc == 0, result.stdout[-2000:]
    assert (done["status"], done["hangup_cause"], done["disconnection_reason"]) == \
        ("completed", "NORMAL_CLEARING", "agent_hangup"), done
    code, body = await server.api("POST", f"/calls/{cid}/end")
    assert code == 409, body
    statuses = [e["status"] for e in await server.events(cid) if e["kind"] == "status"]
    assert statuses.count("completed") == 1, statuses
