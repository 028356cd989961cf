"""The default listen (no SWITCHBOARD_SIP_HOST) covers loopback and every other interface (issue 8.1).

Before: with no SIP variables the engine bound only the machine's non-loopback addresses (while logging
``listening on 0.0.0.0:5060``), so the README's ``sip:demo@127.0.0.1:5060`` got no answer and outbound
calls to 127.0.0.1 failed ``no_route`` in 5 ms. Here `switchboard serve` runs with only ports set; a
baresip softphone on 127.0.0.1 dials the URI the banner prints, another one inside a network namespace
this module creates (a veth pair standing in for a LAN interface) dials the LAN address, and an outbound
call reaches a sipp UAS on 127.0.0.1. No traffic leaves loopback or the namespace.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sipcore.threads import AUDIO_THREADS, CLOCK_THREADS
from switchboard.platform import sched
from tests.e2e.conftest import Server, served
from tests.e2e.helpers import active_span, baresip_dial, caller_tone_wav, frame_rms, read_mono, uas, wait_dump
from tests.support.sip_peers import HOST, running

pytestmark = [pytest.mark.sip]

CALL_SECONDS = 6.0


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def lan() -> Iterator[dict[str, str]]:
    """A network namespace joined to this host by a veth pair: host side 10.X.Y.1/30, inside 10.X.Y.2/30."""
    tag = secrets.token_hex(3)
    ns, host_if, ns_if = f"sbns-{tag}", f"sbv{tag}a", f"sbv{tag}b"
    used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    while True:
        net = f"10.{secrets.randbelow(200) + 50}.{secrets.randbelow(250)}"
        if f" {net}." not in used:
            break
    ip("netns", "add", ns)
    try:
        ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        ip("link", "set", ns_if, "netns", ns)
        ip("addr", "add", f"{net}.1/30", "dev", host_if)
        ip("link", "set", host_if, "up")
        ip("netns", "exec", ns, "ip", "addr", "add", f"{net}.2/30", "dev", ns_if)
        ip("netns", "exec", ns, "ip", "link", "set", ns_if, "up")
        ip("netns", "exec", ns, "ip", "link", "set", "lo", "up")
        yield {"ns": ns, "host_addr": f"{net}.1", "peer_addr": f"{net}.2"}
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@pytest.fixture(scope="module")
def server(e2e_admin_dsn: str, lan: dict[str, str]) -> Iterator[Server]:
    """`switchboard serve` with NO SWITCHBOARD_SIP_HOST (the veth exists before it starts)."""
    with served(e2e_admin_dsn, sip_host=None) as srv:
        yield srv


def banner_uris(server: Server) -> list[str]:
    return re.findall(r"sip:demo@\S+", server.stdout())


def test_banner_and_log_show_every_bound_address(server: Server, lan: dict[str, str]) -> None:
    uris = banner_uris(server)
    assert uris[0] == f"sip:demo@127.0.0.1:{server.sip_port}", server.stdout()
    assert f"sip:demo@{lan['host_addr']}:{server.sip_port}" in uris
    bound = re.search(r"SIP engine listening on 0\.0\.0\.0:\d+; bound: (.*)", server.logs(400))
    assert bound, server.logs(400)
    assert f"udp 127.0.0.1:{server.sip_port}" in bound.group(1)
    assert f"udp {lan['host_addr']}:{server.sip_port}" in bound.group(1)


def test_health_reports_native_and_application_calls(server: Server) -> None:
    code, body = server.api_sync("GET", "/health")
    assert code == 200, body
    assert body["data"]["checks"]["sip_capacity"] == "up", body  # no native call without an owner
    sip = body["data"]["details"]["sip"]
    assert sip["native_calls"] == sip["application_calls"] == 0, sip
    assert sip["max_calls"] > 0 and sip["source_verified"] is True
    assert f"udp 127.0.0.1:{server.sip_port}" in sip["listening"]


def rr_threads(pid: int) -> set[int]:
    return {tid for tid, (_, policy) in sched.thread_policies(pid).items() if policy == "SCHED_RR"}


def child_processes(pid: int) -> set[int]:
    return {int(c) for task in Path(f"/proc/{pid}/task").iterdir() for c in (task / "children").read_text().split()}


def slack_of_audio_threads(pid: int) -> dict[tuple[str, int], int]:
    """The timer slack (ns) of the engine's per-call audio threads ("aumem…", "Audio TX"), by (name, tid)."""
    return {(comm, tid): int(Path(f"/proc/{tid}/timerslack_ns").read_text())
            for tid, (comm, policy) in sched.thread_policies(pid).items()
            if comm.startswith(AUDIO_THREADS) and policy == "SCHED_OTHER"}


def slack_as_wanted(slack: dict[tuple[str, int], int]) -> bool:
    """The call's transmit thread and player clock got the engine's 4 ms back; its source (the transmit clock)
    kept none."""
    clock = {v for (comm, _), v in slack.items() if comm.startswith(CLOCK_THREADS)}
    rest = {v for (comm, _), v in slack.items() if not comm.startswith(CLOCK_THREADS)}
    return len(slack) >= 3 and clock == {0} and rest == {4_000_000}


@pytest.fixture(scope="module")
def off_server(e2e_admin_dsn: str) -> Iterator[Server]:
    with served(e2e_admin_dsn, extra_env={"SWITCHBOARD_REALTIME": "off"}) as srv:
        yield srv


def test_realtime_off_schedules_normally(off_server: Server) -> None:
    assert off_server.proc is not None
    code, body = off_server.api_sync("GET", "/health")
    assert body["data"]["details"]["realtime_scheduling"] == {"media_tick": False, "sip_engine": False}, body
    assert not rr_threads(off_server.proc.pid)


async def test_the_default_server_runs_its_audio_path_real_time_where_permitted(server: Server,
                                                                             workdir: Path) -> None:
    """SWITCHBOARD_REALTIME unset (auto), on a machine that allows it (root here): the media tick's thread and the
    SIP engine's thread in SCHED_RR; each call's audio threads normal, with the engine's 4 ms timer slack given
    back (a real-time thread passes none on) except to the transmit clock; the helpers it starts normal or
    idle-class."""
    assert server.proc is not None
    pid = server.proc.pid
    code, body = server.api_sync("GET", "/health")
    assert body["data"]["details"]["realtime_scheduling"] == {"media_tick": True, "sip_engine": True}, body
    idle = rr_threads(pid)
    assert pid in idle and len(idle) == 2, sched.thread_policies(pid)  # the event loop (main) and the SIP thread
    source = caller_tone_wav(workdir / "caller.wav", CALL_SECONDS, freq=1000)
    seen = await server.call_ids()
    proc, _ = await baresip_dial(workdir, server.demo_uri, source, limit=40)
    try:
        await server.wait_new_call(seen, direction="inbound")
        deadline = asyncio.get_running_loop().time() + 5
        # the kernel tells no one when a thread starts or its slack changes: /proc is polled until they show
        while asyncio.get_running_loop().time() < deadline:
            slack = slack_of_audio_threads(pid)
            if slack_as_wanted(slack):
                break
            await asyncio.sleep(0.05)
        assert slack_as_wanted(slack), slack  # the call's source, player, TX
        assert rr_threads(pid) == idle
    finally:
        await proc.stop()
    children = child_processes(pid)
    assert children  # the speech helpers at least
    for child in children:
        assert not rr_threads(child), (child, sched.thread_policies(child))


async def dial_and_check(server: Server, workdir: Path, uri: str, **peer: Any) -> dict[str, Any]:
    seen = await server.call_ids()
    source = caller_tone_wav(workdir / "caller.wav", CALL_SECONDS, freq=1000)
    proc, dump_dir = await baresip_dial(workdir, uri, source, limit=40, **peer)
    try:
        live = await server.wait_new_call(seen, direction="inbound")
        call = await server.wait_call(live["call_id"], {"completed", "failed", "canceled"}, timeout=CALL_SECONDS + 15)
        heard_path = await wait_dump(dump_dir)
    finally:
        await proc.stop()
    assert (call["status"], call["disconnection_reason"]) == ("completed", "user_hangup"), call
    heard, _rate = read_mono(heard_path)
    start, end = active_span(heard)
    assert frame_rms(heard).max() > 1000 and end - start > 1.0, "the caller heard no greeting"
    return call


async def test_softphone_on_loopback_reaches_the_printed_uri(server: Server, workdir: Path) -> None:
    uri = banner_uris(server)[0]
    call = await dial_and_check(server, workdir, uri)
    row = await server.row(call["call_id"])
    assert row["sip_source"].startswith("127.0.0.1:"), row["sip_source"]


async def test_softphone_on_another_interface_is_answered(server: Server, lan: dict[str, str],
                                                         workdir: Path) -> None:
    uri = f"sip:demo@{lan['host_addr']}:{server.sip_port}"
    call = await dial_and_check(server, workdir, uri, host=lan["peer_addr"], netns=lan["ns"])
    row = await server.row(call["call_id"])
    assert row["sip_source"].startswith(f"{lan['peer_addr']}:"), row["sip_source"]  # the real source


async def test_outbound_call_to_a_peer_on_loopback(server: Server, workdir: Path) -> None:
    code, body = server.api_sync("POST", "/agents", {"name": "Outbound loopback", "begin_message": "Hello there.",
                                                     "interruptible": False})
    assert code == 201, body
    args, port = uas(workdir, "uas_answer_bye.xml", "-rtp_echo", HOLD_MS="2000")
    async with running(args, cwd=workdir, limit=30, name="uas") as peer:
        await asyncio.sleep(0.3)
        call = await server.ok("POST", "/calls", {"to_number": f"sip:+15551230000@{HOST}:{port}",
                                                  "agent_id": body["data"]["id"]}, status=201)
        done = await server.wait_call(call["call_id"], timeout=20)
        result = await peer.wait(10)
    assert result.rc == 0, result.stdout[-2000:]
    assert (done["status"], done["disconnection_reason"]) == ("completed", "user_hangup"), done
