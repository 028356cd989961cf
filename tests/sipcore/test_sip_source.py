"""The real source of an INVITE, not the Via the caller wrote (issue 9.9).

A spoofed Via got a call answered on a trunk restricted to 203.0.113.0/24, and rotating Via hosts bypassed
the per-source INVITE rate limit. The engine now reports the packet's real source (libre's trace hook,
see sipcore/native.py); these tests send forged INVITEs over real UDP from 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from sipcore import IncomingCall, RefusedCall
from sipcore.baresip_engine import BaresipEngine
from sipcore.protection import FailureTracker, RateLimiter
from tests.support.malformed import SDP
from tests.support.sip_peers import HOST, udp_client

pytestmark = [pytest.mark.sip, pytest.mark.asyncio(loop_scope="session")]


def forged_invite(n: int, port: int, lport: int, via_host: str) -> bytes:
    """An INVITE from 127.0.0.1:lport whose Via claims ``via_host`` (rport: answers come back to us)."""
    body = SDP.format(host=HOST, rtp=21000 + 2 * n)
    tag = f"{os.getpid()}-{n}"
    return (
        f"INVITE sip:+15550002468@{HOST}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {via_host}:5060;rport;branch=z9hG4bK-spoof{tag}\r\n"
        f"From: <sip:+15559990000@{via_host}>;tag=s{tag}\r\n"
        f"To: <sip:+15550002468@{HOST}:{port}>\r\n"
        f"Call-ID: spoof{tag}@{via_host}\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
        f"Contact: <sip:caller@{via_host}:5060>\r\nContent-Type: application/sdp\r\n"
        f"Content-Length: {len(body)}\r\n\r\n{body}"
    ).encode()


async def test_source_is_the_packet_not_the_via(engine: BaresipEngine) -> None:
    seen: asyncio.Queue[IncomingCall] = asyncio.Queue()

    async def refuse(incoming: IncomingCall) -> None:
        seen.put_nowait(incoming)
        await incoming.call.reject(403)

    engine.set_incoming_handler(refuse)
    _, port = engine.listen_address
    client, lport = await udp_client()
    assert client.transport is not None
    try:
        client.transport.sendto(forged_invite(1, port, lport, "203.0.113.7"), (HOST, port))
        incoming = await asyncio.wait_for(seen.get(), 5)
    finally:
        client.transport.close()
    assert incoming.via_host == "203.0.113.7"  # what the caller claims
    assert (incoming.source_host, incoming.source_port) == (HOST, lport)  # where it really came from
    assert incoming.source_verified and incoming.source_transport == "udp"
    assert engine.stats().source_verified


async def test_rotating_via_hosts_do_not_bypass_the_rate_limit(engine: BaresipEngine) -> None:
    handled: list[IncomingCall] = []
    refused: list[RefusedCall] = []
    all_in = asyncio.Event()

    async def refuse(incoming: IncomingCall) -> None:
        handled.append(incoming)
        await incoming.call.reject(486)
        if len(handled) + len(refused) == 10:
            all_in.set()

    def on_refused(call: RefusedCall) -> None:
        refused.append(call)
        if len(handled) + len(refused) == 10:
            all_in.set()

    engine.set_incoming_handler(refuse)
    engine.on_refused(on_refused)
    _, port = engine.listen_address
    saved = engine._limiter
    engine._limiter = RateLimiter(rate=0.01, burst=3)
    client, lport = await udp_client()
    assert client.transport is not None
    try:
        for n in range(10):  # a new Via host every time, one real source
            client.transport.sendto(forged_invite(100 + n, port, lport, f"198.51.100.{n + 1}"), (HOST, port))
        await asyncio.wait_for(all_in.wait(), 10)
    finally:
        client.transport.close()
        engine._limiter = saved
    assert len(handled) == 3, [i.via_host for i in handled]
    assert [r.reason for r in refused] == ["rate_limited"] * 7
    assert {r.incoming.source_host for r in refused} == {HOST}


async def test_repeated_failures_block_a_source(engine: BaresipEngine) -> None:
    handled: list[IncomingCall] = []

    async def unknown_number(incoming: IncomingCall) -> None:
        handled.append(incoming)
        await incoming.call.reject(404)

    engine.set_incoming_handler(unknown_number)
    refused: list[RefusedCall] = []
    engine.on_refused(refused.append)
    _, port = engine.listen_address
    saved = engine._failures
    engine._failures = FailureTracker(threshold=3, block_s=60, exempt=())  # loopback is exempt by default
    client, lport = await udp_client()
    assert client.transport is not None
    try:
        for n in range(6):
            client.transport.sendto(forged_invite(200 + n, port, lport, HOST), (HOST, port))
            await asyncio.sleep(0.3)  # one at a time: each handled (and failed) before the next
        assert engine._failures.blocked(HOST)
        assert engine.stats().sources_blocked == 1
    finally:
        client.transport.close()
        engine._failures = saved
    assert len(handled) == 3  # the rest never reached routing (blocked: dropped, not reported)
    assert refused == []
