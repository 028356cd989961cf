"""Descriptors and TCP connections (issue 9.2).

~1,000 idle TCP connections to the SIP port made every new call fail: libre watches at most 1,024
descriptors ("fd_listen maxfds reached"), so a call's RTP sockets could not be opened, and that cap
cannot be raised once the library runs. The engine limits TCP connections per source, in total (within
the descriptor budget calls leave) and by idleness. Real connections from loopback, a real sipp call
over UDP during the flood.
"""

from __future__ import annotations

import asyncio
import resource
import socket
from pathlib import Path

import pytest

from sipcore import sockets
from sipcore.baresip_engine import BaresipEngine
from tests.sipcore.test_sip_inbound import Answerer, sipp_to, tone_call
from tests.support.sip_peers import HOST, running

pytestmark = [pytest.mark.sip, pytest.mark.asyncio(loop_scope="session")]

FLOOD = 1000


async def open_idle(port: int, n: int) -> list[socket.socket]:
    """``n`` TCP connections that never send a byte (what a flooder holds open)."""
    loop = asyncio.get_running_loop()
    conns = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(s, (HOST, port)), 5)
        except (TimeoutError, OSError):
            s.close()
            continue
        conns.append(s)
    return conns


def engine_connections(port: int) -> int:
    return sum(1 for s in sockets.own_sockets(port, ("tcp",)) if s.state == "established")


async def test_calls_are_answered_during_a_1000_connection_flood(engine: BaresipEngine, workdir: Path) -> None:
    _, port = engine.listen_address
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    answerer = Answerer()
    engine.set_incoming_handler(answerer)
    flood = await open_idle(port, FLOOD)
    try:
        assert len(flood) >= FLOOD * 0.9, len(flood)
        # during the flood (the flooder keeps its sockets): a real call over UDP is answered
        args = sipp_to(engine, tone_call(workdir, hold_ms=1000), "-s", "+15551112222", "-m", "1")
        async with running(args, cwd=workdir, limit=30, name="sipp") as sipp:
            incoming = await asyncio.wait_for(answerer.calls.get(), 15)
            await asyncio.wait_for(incoming.call.wait_ended(), 15)
            result = await sipp.wait(15)
        assert result.rc == 0, result.stdout[-2000:]
        # the per-source cap has trimmed the flood on the server side
        stats = engine.stats()
        print(f"flood {len(flood)} connections; engine kept {stats.tcp_connections}, closed {stats.tcp_closed}")
        cap = engine._tcp_limits.max_per_source
        assert stats.tcp_closed >= len(flood) - cap
        assert await asyncio.to_thread(engine_connections, port) <= cap
    finally:
        for s in flood:
            s.close()


async def test_idle_tcp_connection_is_closed(engine: BaresipEngine) -> None:
    _, port = engine.listen_address
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        # the engine closes it after tcp_idle_timeout (3 s in these tests) and a sweep (1 s)
        assert await asyncio.wait_for(reader.read(100), 10) == b""
    finally:
        writer.close()


async def test_sip_udp_receive_buffer_is_raised(engine: BaresipEngine) -> None:
    _, port = engine.listen_address
    udp = await asyncio.to_thread(sockets.own_sockets, port, ("udp",))
    assert udp, "the engine's SIP UDP socket is visible"
    for entry in udp:
        dup = sockets.dup_checked(entry)
        assert dup is not None
        with dup:
            # the kernel reports twice what was set; the default was ~208 KiB
            assert dup.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) >= 4 * 1024 * 1024
