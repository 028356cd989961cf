"""RFC 4475 torture messages and oversized INVITEs against the engine's SIP port."""

from __future__ import annotations

import asyncio

import pytest

from sipcore import IncomingCall
from sipcore.baresip_engine import BaresipEngine
from tests.support.sip_peers import HOST, SUPPORT, options_ping, udp_client

pytestmark = [pytest.mark.sip, pytest.mark.asyncio(loop_scope="session")]

TORTURE = SUPPORT / "sip-torture"  # RFC 4475 messages, a byte-exact copy of shared/sip-torture
MESSAGES = sorted(TORTURE.glob("*/*.dat")) if TORTURE.exists() else []


async def reject_all(incoming: IncomingCall) -> None:
    await incoming.call.reject(400)


async def test_every_torture_message_then_options(engine: BaresipEngine) -> None:
    assert len(MESSAGES) == 50, "the RFC 4475 corpus is in tests/support/sip-torture"
    engine.set_incoming_handler(reject_all)
    _, port = engine.listen_address
    client, local_port = await udp_client()
    assert client.transport is not None
    try:
        for n, path in enumerate(MESSAGES):
            client.transport.sendto(path.read_bytes(), (HOST, port))
            await asyncio.sleep(0.02)
            reply = await options_ping(client, local_port, port, n)
            assert reply.startswith(b"SIP/2.0 200"), f"after {path.parent.name}/{path.name}: {reply[:80]!r}"
    finally:
        client.transport.close()


def big_invite(size: int, transport: str, local_port: int, port: int, n: int) -> bytes:
    head = (
        f"INVITE sip:big{n}@{HOST}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {HOST}:{local_port};branch=z9hG4bK-big{n}\r\n"
        f"From: <sip:big@{HOST}:{local_port}>;tag=b{n}\r\n"
        f"To: <sip:big{n}@{HOST}:{port}>\r\n"
        f"Call-ID: big{n}@{HOST}\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
        f"Contact: <sip:big@{HOST}:{local_port};transport={transport.lower()}>\r\n"
    )
    pad_lines = []
    total = len(head)
    i = 0
    while total < size - 40:
        line = f"X-Pad-{i}: {'a' * 200}\r\n"
        pad_lines.append(line)
        total += len(line)
        i += 1
    return (head + "".join(pad_lines) + "Content-Length: 0\r\n\r\n").encode()


async def test_oversized_invites_do_no_harm(engine: BaresipEngine) -> None:
    engine.set_incoming_handler(reject_all)
    _, port = engine.listen_address
    client, local_port = await udp_client()
    assert client.transport is not None
    try:
        for n, size in enumerate((5_000, 9_000)):
            client.transport.sendto(big_invite(size, "UDP", local_port, port, n), (HOST, port))
            await asyncio.sleep(0.1)
            assert (await options_ping(client, local_port, port, 1000 + n)).startswith(b"SIP/2.0 ")
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            lport = writer.get_extra_info("sockname")[1]
            writer.write(big_invite(60_000, "TCP", lport, port, 99))
            await writer.drain()
            with pytest.raises((TimeoutError, ConnectionError, asyncio.IncompleteReadError)):
                # whatever the stack answers (or not), it must not crash
                await asyncio.wait_for(reader.readexactly(1 << 20), 1.0)
        finally:
            writer.close()
        await asyncio.sleep(0.2)
        assert (await options_ping(client, local_port, port, 2000)).startswith(b"SIP/2.0 200")
    finally:
        client.transport.close()
