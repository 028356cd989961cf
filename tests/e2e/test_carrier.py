"""kamailio as the carrier: trunk registration with digest auth (and its visible failure, fixed without a
restart), an outbound E.164 call through the 407 challenge, an inbound DID relayed to our contact."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Server
from tests.e2e.helpers import tone_uac, uac_to
from tests.support.carrier import (
    INBOUND_DID,
    TRUNK_PASSWORD,
    TRUNK_REALM,
    TRUNK_USER,
    Carrier,
    carrier_config,
)
from tests.support.sip_peers import HOST, free_port, running, scenario, sipp_args

pytestmark = [pytest.mark.sip]

AGENT_NAME = "Carrier DID agent"


@pytest.fixture(scope="module")
def carrier() -> Iterator[Carrier]:
    """kamailio on its own ports for this module (the lab configuration, see tests/support/carrier.py)."""
    workdir = Path(tempfile.mkdtemp(prefix="sbkam-", dir="/tmp"))
    port, pstn = free_port(), free_port()
    cfg = carrier_config(workdir, port, pstn)
    log = open(workdir / "kamailio.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        ["kamailio", "-f", str(cfg), "-DD", "-E", "-Y", str(workdir), "-P", str(workdir / "kamailio.pid"),
         "-m", "64", "-M", "8"], cwd=workdir, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        start_new_session=True)
    log.close()
    try:
        time.sleep(0.8)
        assert proc.poll() is None, (workdir / "kamailio.log").read_text()
        yield Carrier(port, pstn)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # its own group: kamailio forks children
        proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def trunks(server: Server, carrier: Carrier) -> dict[str, Any]:
    """Two registering trunks on the carrier: one with the right password, one with a wrong one."""

    def create(name: str, password: str) -> dict[str, Any]:
        code, body = server.api_sync("POST", "/trunks", {
            "name": name, "host": HOST, "port": carrier.port, "username": TRUNK_USER, "password": password,
            "realm": TRUNK_REALM, "register": True, "register_expires": 120,
        })
        assert code == 201, body
        assert "password" not in body["data"]
        return body["data"]

    return {"good": create("carrier", TRUNK_PASSWORD), "bad": create("carrier typo", "not-the-password")}


async def wait_registration(server: Server, trunk_id: str, state: str, timeout: float = 15.0) -> dict[str, Any]:  # noqa: ASYNC109 - a polling deadline
    deadline = time.monotonic() + timeout
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = await server.ok("GET", f"/trunks/{trunk_id}/status")
        if status["registration_state"] == state:
            return status
        await asyncio.sleep(0.1)
    raise AssertionError(f"trunk {trunk_id} never reached {state!r}; last {status}\n{server.logs()}")


async def test_registration_succeeds_and_fails_visibly(server: Server, trunks: dict[str, Any]) -> None:
    ok = await wait_registration(server, trunks["good"]["id"], "registered")
    assert ok["register"] is True and ok["last_error"] in (None, "")
    expires = datetime.fromisoformat(ok["expires_at"].replace("Z", "+00:00"))
    assert 0 < (expires - datetime.now(UTC)).total_seconds() <= 125, ok["expires_at"]

    bad = await wait_registration(server, trunks["bad"]["id"], "failed")
    assert bad["last_error"] and ("401" in bad["last_error"] or "403" in bad["last_error"]), bad
    assert bad["expires_at"] is None


async def test_outbound_e164_through_the_carrier_passes_407(server: Server, carrier: Carrier,
                                                           trunks: dict[str, Any], workdir: Path) -> None:
    agent = (await server.ok("GET", "/agents"))[0]
    sf = scenario("uas_answer_bye.xml", workdir, HOLD_MS="1500")
    pstn = sipp_args(sf, carrier.pstn_port, free_port(4), "-m", "1", "-rtp_echo")
    async with running(pstn, cwd=workdir, limit=30, name="pstn") as peer:
        await asyncio.sleep(0.3)
        call = await server.ok("POST", "/calls", {"to_number": "+1 555 123 0000", "trunk_id": trunks["good"]["id"],
                                                  "agent_id": agent["id"]}, status=201)
        assert call["to_number"] == "+15551230000" and call["trunk_id"] == trunks["good"]["id"]
        done = await server.wait_call(call["call_id"], timeout=20)
        result = await peer.wait(10)
    assert result.rc == 0, result.stdout[-2000:]  # the INVITE reached the PSTN side and was answered there
    assert (done["status"], done["hangup_cause"], done["disconnection_reason"]) == \
        ("completed", "NORMAL_CLEARING", "user_hangup"), done
    assert done["answered_at"] and done["sip_call_id"] and done["duration_seconds"] >= 1
    history = [e["status"] for e in await server.events(call["call_id"]) if e["kind"] == "status"]
    assert history == ["pending", "ringing", "in_progress", "completed"], history


async def test_inbound_did_from_the_carrier_reaches_its_agent(server: Server, carrier: Carrier,
                                                              trunks: dict[str, Any], workdir: Path) -> None:
    await wait_registration(server, trunks["good"]["id"], "registered")
    agent = await server.ok("POST", "/agents", {"name": AGENT_NAME, "begin_message": "Carrier line, hello."})
    number = await server.ok("POST", "/numbers", {"number": INBOUND_DID, "trunk_id": trunks["good"]["id"],
                                                  "agent_id": agent["id"]})
    seen = await server.call_ids()
    sf = tone_uac(workdir, INBOUND_DID, hold_ms=2000, via_proxy=True)
    target = f"{HOST}:{carrier.port}"  # to kamailio, which relays to our registered contact
    async with running(uac_to(sf, target, INBOUND_DID), cwd=workdir, limit=30, name="sipp") as sipp:
        result = await sipp.wait(25)
    assert result.rc == 0, result.stdout[-2000:]
    live = await server.wait_new_call(seen, direction="inbound")
    call = await server.wait_call(live["call_id"], timeout=10)
    assert (call["direction"], call["to_number"], call["agent"], call["agent_id"]) == \
        ("inbound", INBOUND_DID, AGENT_NAME, agent["id"]), call
    assert call["number_id"] == number["id"] and call["trunk_id"] == trunks["good"]["id"]
    assert (call["status"], call["disconnection_reason"]) == ("completed", "user_hangup"), call


async def test_fixing_the_password_registers_without_restart(server: Server, trunks: dict[str, Any]) -> None:
    bad = trunks["bad"]["id"]
    await wait_registration(server, bad, "failed")
    # it keeps retrying with backoff; between attempts its last error stays visible
    for _ in range(3):
        status = await server.ok("GET", f"/trunks/{bad}/status")
        assert status["registration_state"] in ("failed", "registering")
        assert "401" in (status["last_error"] or "") or "403" in (status["last_error"] or ""), status
        await asyncio.sleep(0.3)
    starts = server.starts
    await server.ok("PATCH", f"/trunks/{bad}", {"password": TRUNK_PASSWORD})
    fixed = await wait_registration(server, bad, "registered")
    assert fixed["expires_at"] and fixed["last_error"] in (None, "")
    assert server.starts == starts and server.proc is not None and server.proc.poll() is None
