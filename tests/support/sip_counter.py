"""A UDP relay in front of a SIP peer that records the requests passing through it (method, time, the
Expires it asks for): what a registrar sees, counted on real packets."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from typing import Any

from tests.support.sip_peers import HOST, free_port

_EXPIRES = re.compile(rb"^(?:Expires|x):\s*(\d+)", re.I | re.M)
_CONTACT_EXPIRES = re.compile(rb"^(?:Contact|m):[^\r\n]*;\s*expires=(\d+)", re.I | re.M)


@dataclass
class Seen:
    method: str
    at: float
    expires: int | None


@dataclass
class SipCounter:
    """Listens on ``port``; forwards to ``target`` and relays answers back to whoever sent the request."""

    target: tuple[str, int]
    reply_delay: float = 0.0  # hold every answer this long (a slow registrar: requests stay in flight)
    port: int = field(default_factory=free_port)
    seen: list[Seen] = field(default_factory=list)
    _front: asyncio.DatagramTransport | None = None
    _backs: dict[tuple[str, int], asyncio.DatagramTransport] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def requests(self, method: str, since: float = 0.0) -> list[Seen]:
        return [s for s in self.seen if s.method == method and s.at >= since]

    async def first(self, method: str, timeout: float = 10) -> Seen:  # noqa: ASYNC109 - a deadline
        """Wait for the first ``method`` request to pass."""
        async with asyncio.timeout(timeout):
            while not (found := self.requests(method)):
                self._arrived.clear()
                await self._arrived.wait()
        return found[0]

    async def start(self) -> SipCounter:
        loop = asyncio.get_running_loop()
        counter = self

        class Front(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                counter._spawn(counter._forward(data, addr))

        self._front, _ = await loop.create_datagram_endpoint(Front, local_addr=(HOST, self.port))
        return self

    async def _forward(self, data: bytes, addr: tuple[str, int]) -> None:
        first = data.split(b"\r\n", 1)[0]
        if not first.startswith(b"SIP/2.0"):
            m = _EXPIRES.search(data) or _CONTACT_EXPIRES.search(data)
            self.seen.append(Seen(first.split(b" ", 1)[0].decode(), time.monotonic(),
                                  int(m.group(1)) if m else None))
            self._arrived.set()
        back = self._backs.get(addr)
        if back is None:
            front = self._front
            loop = asyncio.get_running_loop()

            counter = self

            class Back(asyncio.DatagramProtocol):
                def datagram_received(self, reply: bytes, _src: tuple[str, int]) -> None:
                    if front is not None:
                        if counter.reply_delay:
                            loop.call_later(counter.reply_delay, front.sendto, reply, addr)
                        else:
                            front.sendto(reply, addr)

            back, _ = await loop.create_datagram_endpoint(Back, remote_addr=self.target)
            self._backs[addr] = back
        back.sendto(data)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for t in (self._front, *self._backs.values()):
            if t is not None:
                t.close()
