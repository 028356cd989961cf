"""Child process for tests/sipcore/test_sip_malformed.py: its own engine, the malformed passes, a real call.

Run in a child: should such an INVITE ever reach the stack, baresip-python 0.5.2a3 leaks the call and
damages its own heap (glibc aborts the process later), and the test process must survive to say so.
Prints one JSON line with what it measured; ``--no-guard`` starts the engine without the request guard
(the reproduction of the fault).

Usage: python -m tests.support.malformed_engine PORT RTP_BASE WORKDIR
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from sipcore import EngineConfig, IncomingCall
from sipcore.baresip_engine import BaresipEngine
from tests.support.malformed import full_pass, fuzz_cases, torture_invites
from tests.support.sip_peers import HOST, SUPPORT, free_port, running, scenario, sipp_args, udp_client

PASSES = 3


async def native_settles(engine: BaresipEngine, limit: float) -> int:
    deadline = asyncio.get_running_loop().time() + limit
    while True:
        native = await engine.native_call_count()
        if native == engine.active_call_count or asyncio.get_running_loop().time() > deadline:
            return native - engine.active_call_count
        await asyncio.sleep(0.1)


async def send_tcp(packets: list[bytes], port: int) -> None:
    for packet in packets:
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(packet)
        await writer.drain()
        try:
            await asyncio.wait_for(reader.read(4096), 0.5)
        except TimeoutError:
            pass
        writer.close()


async def statuses(client: object, lport: int, port: int) -> dict[str, str]:
    """Each leaking kind alone: the status line of the final answer it gets."""
    from tests.support.malformed import CASES, LEAKING

    out = {}
    for i, name in enumerate(LEAKING):
        client.drain()  # type: ignore[attr-defined]
        client.transport.sendto(CASES[name](500_000 + i, HOST, port, lport), (HOST, port))  # type: ignore[attr-defined]
        want = f"mal{500_000 + i}@".encode()
        while True:
            data = await asyncio.wait_for(client.queue.get(), 3)  # type: ignore[attr-defined]
            if want in data and not data.startswith(b"SIP/2.0 1"):
                out[name] = data.split(b"\r\n", 1)[0].decode()
                break
    return out


async def main(port: int, rtp: int, workdir: Path, guard: bool) -> dict[str, object]:
    engine = BaresipEngine()
    if not guard:
        engine._check_request = lambda headers: None  # type: ignore[method-assign]
    await engine.start(EngineConfig(host=HOST, port=port, rtp_port_min=rtp, rtp_port_max=rtp + 199, max_calls=4,
                                    invite_rate=500, invite_burst=500, failure_block_threshold=10_000))
    out: dict[str, object] = {"native_cap": engine.max_calls + 4}
    answered: asyncio.Queue[IncomingCall] = asyncio.Queue()

    async def reject_all(incoming: IncomingCall) -> None:
        await incoming.call.reject(400)

    async def answer(incoming: IncomingCall) -> None:
        await incoming.call.answer()
        answered.put_nowait(incoming)

    try:
        engine.set_incoming_handler(reject_all)
        client, lport = await udp_client()
        assert client.transport is not None
        out["statuses"] = await statuses(client, lport, port)
        leaked: list[int] = []
        left: list[int] = []
        for n in range(PASSES):
            for _name, packet in full_pass(HOST, port, lport, start=1000 * (n + 1)):
                client.transport.sendto(packet, (HOST, port))
                await asyncio.sleep(0.005)
            for i, (_name, packet) in enumerate(torture_invites(SUPPORT / "sip-torture")):
                client.transport.sendto(packet.replace(b"Call-ID: ", f"Call-ID: p{n}-{i}-".encode(), 1), (HOST, port))
            await asyncio.sleep(0.3)
            leaked.append(await engine.native_call_count() - engine.active_call_count)
            left.append(await native_settles(engine, 3 if guard else 0.1))
        for _name, packet in fuzz_cases(HOST, port, lport):
            client.transport.sendto(packet, (HOST, port))
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.5)
        out["fuzz_leaked"] = await engine.native_call_count() - engine.active_call_count
        out["fuzz_left"] = await native_settles(engine, 3 if guard else 0.1)
        client.transport.close()
        await send_tcp([p for _n, p in full_pass(HOST, port, lport, start=900_000, transport="TCP")], port)
        out["tcp_left"] = await native_settles(engine, 3)
        out.update(leaked_per_pass=leaked, left_after_pass=left, stats=engine.stats().__dict__ | {"listening": []})
        if not guard:
            return out
        engine.set_incoming_handler(answer)
        sf = scenario("uac_tone.xml", workdir, TO_USER="+15551112222", UA="sipp-test", HOLD_MS="500", MEDIA="")
        args = [*sipp_args(sf, free_port(), free_port(4), "-m", "1"), f"{HOST}:{port}"]
        async with running(args, cwd=workdir, limit=20, name="sipp") as sipp:
            incoming = await asyncio.wait_for(answered.get(), 10)
            await asyncio.wait_for(incoming.call.wait_ended(), 15)
            result = await sipp.wait(10)
        out["real_call_rc"] = result.rc
    finally:
        if guard:
            await engine.stop()
    return out


if __name__ == "__main__":
    res = asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]), "--no-guard" not in sys.argv))
    print("RESULT " + json.dumps(res), flush=True)
