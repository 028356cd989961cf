"""Inbound calls to numbers: set up through the API, called by sipp, answered or refused and recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Server
from tests.e2e.helpers import (
    active_span,
    frame_rms,
    read_stereo,
    recording_file,
    sipp_pcap_dir,
    tone_ratio,
    tone_uac,
    uac_to,
)
from tests.support.sip_peers import running, scenario

pytestmark = [pytest.mark.sip]

NUMBER = "+15550002222"
AGENT_NAME = "Inbound e2e agent"
GREETING = "Thanks for calling the inbound test line. Goodbye for now."


@pytest.fixture(scope="module")
def tenant(server: Server) -> dict[str, Any]:
    """Through the API: a trunk open to loopback, an agent, and numbers in every state worth testing."""

    def ok(method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        code, resp = server.api_sync(method, path, body)
        assert code == 201, (path, code, resp)
        return resp["data"]

    trunk = ok("POST", "/trunks", {"name": "loopback pbx", "host": "127.0.0.1", "inbound_cidrs": ["127.0.0.1/32"]})
    closed = ok("POST", "/trunks", {"name": "far pbx", "host": "10.9.9.1", "inbound_cidrs": ["10.9.9.0/24"]})
    agent = ok("POST", "/agents", {"name": AGENT_NAME, "begin_message": GREETING})
    numbers = {
        "answered": ok("POST", "/numbers", {"number": NUMBER, "trunk_id": trunk["id"], "agent_id": agent["id"]}),
        "dtmf": ok("POST", "/numbers", {"number": "+15550002223", "trunk_id": trunk["id"], "agent_id": agent["id"]}),
        "inactive": ok("POST", "/numbers", {"number": "+15550003333", "trunk_id": trunk["id"],
                                            "agent_id": agent["id"], "status": "inactive"}),
        "no_agent": ok("POST", "/numbers", {"number": "+15550004444", "trunk_id": trunk["id"]}),
        "outside": ok("POST", "/numbers", {"number": "+15550005555", "trunk_id": closed["id"],
                                           "agent_id": agent["id"]}),
    }
    return {"trunk": trunk, "agent": agent, "numbers": numbers}


async def test_sipp_call_to_number_is_answered_by_its_agent(server: Server, tenant: dict[str, Any],
                                                            workdir: Path) -> None:
    seen = await server.call_ids()
    sf = tone_uac(workdir, NUMBER, hold_ms=6000)
    async with running(uac_to(sf, server.sip_target, NUMBER), cwd=workdir, limit=30, name="sipp") as sipp:
        result = await sipp.wait(25)
    assert result.rc == 0, result.stdout[-2000:] + result.stderr[-2000:]

    live = await server.wait_new_call(seen, direction="inbound")
    call = await server.wait_call(live["call_id"], timeout=10)
    assert call["direction"] == "inbound" and call["to_number"] == NUMBER
    assert call["agent"] == AGENT_NAME and call["agent_id"] == tenant["agent"]["id"]
    assert call["number_id"] == tenant["numbers"]["answered"]["id"]
    assert call["trunk_id"] == tenant["trunk"]["id"]
    assert call["from_number"] == "+15550009999"
    assert (call["status"], call["hangup_cause"], call["disconnection_reason"]) == \
        ("completed", "NORMAL_CLEARING", "user_hangup"), call
    listed = await server.ok("GET", "/calls", params={"direction": "inbound", "agent_id": tenant["agent"]["id"]})
    assert call["call_id"] in [c["call_id"] for c in listed]

    # audio both ways, from the recording: the caller's tone (left), the agent's greeting (right)
    left, right, rate = read_stereo(recording_file(await server.row(call["call_id"]), server.data_dir))
    window = left[int(1.5 * rate): int(4.5 * rate)]
    assert frame_rms(window).mean() > 500 and tone_ratio(window, rate, 1000) > 0.9
    start, end = active_span(right)
    assert frame_rms(right).max() > 1000 and end - start > 2.0, (start, end)


async def test_rfc4733_digits_from_caller_become_events(server: Server, tenant: dict[str, Any],
                                                        workdir: Path) -> None:
    """sipp plays its bundled RFC 4733 capture (digit 1): the call gets a 'dtmf' event."""
    sipp_pcap_dir(workdir)
    number = tenant["numbers"]["dtmf"]["number"]
    seen = await server.call_ids()
    sf = tone_uac(workdir, number, hold_ms=2500, media='<exec play_pcap_audio="pcap/dtmf_2833_1.pcap"/>')
    async with running(uac_to(sf, server.sip_target, number), cwd=workdir, limit=30, name="sipp") as sipp:
        assert (await sipp.wait(25)).rc == 0
    call = await server.wait_new_call(seen, direction="inbound")
    await server.wait_call(call["call_id"], timeout=10)
    dtmf = await server.wait_event(call["call_id"], "dtmf_received")
    assert [e["detail"]["digit"] for e in dtmf] == ["1"]


async def refused_by_server(server: Server, workdir: Path, number: str, *extra: str) -> None:
    """sipp calls ``number`` and must get a final 486 (what the engine can put on the wire) and ACK it."""
    sf = scenario("uac_expect_reject.xml", workdir, STATUS="486", UA="sipp-e2e")
    async with running(uac_to(sf, server.sip_target, number, *extra), cwd=workdir, limit=20, name="sipp") as sipp:
        result = await sipp.wait(15)
    assert result.rc == 0, result.stdout[-2000:] + result.stderr[-2000:]


async def test_unknown_number_from_a_stranger_is_counted_not_stored(server: Server, tenant: dict[str, Any],
                                                                    workdir: Path) -> None:
    """From an address inside no organization's trunk inbound_cidrs (127.0.0.2): refused, logged, no row."""
    number = "+15550009404"
    await refused_by_server(server, workdir, number, "-i", "127.0.0.2")
    assert await server.sql("SELECT * FROM calls WHERE to_number = $1", number) == []
    assert "refused INVITE from 127.0.0.2: unknown_number" in server.logs(400)


async def test_unknown_number_from_inside_a_tenants_cidrs_is_theirs(server: Server, tenant: dict[str, Any],
                                                                   workdir: Path) -> None:
    """From 127.0.0.1, inside the tenant's trunk inbound_cidrs: a mis-routed number its operator sees."""
    number = "+15550009405"
    await refused_by_server(server, workdir, number)
    failed = await server.ok("GET", "/calls", params={"status": "failed", "search": number})
    assert len(failed) == 1, failed
    call = failed[0]
    assert (call["direction"], call["disconnection_reason"], call["sip_status"], call["hangup_cause"]) == \
        ("inbound", "unknown_number", 404, "UNALLOCATED_NUMBER"), call
    assert call["ended_at"] and call["answered_at"] is None and "404" in call["error_message"]
    row = await server.row(call["call_id"])
    assert row["sip_source"].startswith("127.0.0.1:") and row["org_id"] is not None


@pytest.mark.parametrize(("case", "reason", "sip_status"), [
    ("inactive", "number_inactive", 480),
    ("no_agent", "no_agent", 480),
    ("outside", "source_not_allowed", 403),
])
async def test_refusal_is_a_failed_inbound_call_with_its_reason(server: Server, tenant: dict[str, Any],
                                                               workdir: Path, case: str, reason: str,
                                                               sip_status: int) -> None:
    number = tenant["numbers"][case]
    await refused_by_server(server, workdir, number["number"])
    calls = await server.ok("GET", "/calls", params={"direction": "inbound", "number_id": number["id"]})
    assert len(calls) == 1, calls
    call = calls[0]
    assert (call["status"], call["disconnection_reason"], call["to_number"]) == ("failed", reason, number["number"])
    assert call["answered_at"] is None and call["ended_at"] and call["duration_seconds"] in (0, 0.0, None)
    row = await server.row(call["call_id"])
    assert row["sip_status"] == sip_status and row["org_id"] is not None
