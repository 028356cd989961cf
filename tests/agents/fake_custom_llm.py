"""A customer's custom-LLM server on loopback, speaking the Retell-style LLM websocket, scripted per test.

Switchboard connects to ``{url}/{call_id}``. On each connection the server sends its ``config`` (if any)
and its begin message (``response`` with ``response_id`` 0, if any); it answers our pings when
``answer_pings``; each ``response_required``/``reminder_required`` takes the next scripted `Answer` and
streams it as ``response`` messages. Everything received is recorded (``received``: (connection number,
message)). Tests send unprompted messages (``agent_interrupt``) with ``send()`` and drop the line with
``drop()``.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.support.loopback_http import serve_on_loopback


@dataclass
class Answer:
    chunks: list[str] = field(default_factory=list)  # content, one response message each
    first_delay: float = 0.0  # before the first chunk
    delay: float | list[float] = 0.0  # between chunks (a list: before each chunk after the first)
    end_call: bool = False  # on the final (content_complete) message
    hold: bool = False  # send only once the next request has arrived (so it is stale by then)
    stale: list[str] = field(default_factory=list)  # first sent as a response to the previous response_id
    drop_after: int | None = None  # close the connection after this many chunks


class FakeCustomLlm:
    def __init__(self, *, config: dict[str, Any] | None = None, begin: str | None = None,
                 answer_pings: bool = True) -> None:
        self.config = {"auto_reconnect": True, "call_details": True} if config is None else config
        self.begin = begin
        self.answer_pings = answer_pings
        self.script: list[Answer] = []
        self.received: list[tuple[int, dict[str, Any]]] = []
        self.sent: list[tuple[float, dict[str, Any]]] = []  # (monotonic time, message)
        self.paths: list[str] = []
        self.sockets: list[web.WebSocketResponse] = []
        self._held: list[tuple[Answer, int]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None
        self._changed = asyncio.Event()
        self.url = ""

    async def start(self) -> FakeCustomLlm:
        app = web.Application()
        app.router.add_get("/llm/{call_id}", self._socket)
        self._runner, port = await serve_on_loopback(app)
        self.url = f"ws://127.0.0.1:{port}/llm"
        return self

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for ws in self.sockets:
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- test controls
    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for _, m in self.received if m.get("interaction_type") == kind]

    async def wait_for(self, kind: str, n: int = 1, limit: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + limit
        while len(self.of(kind)) < n:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {n} {kind}, received {[m for _, m in self.received]}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), max(0.01, deadline - time.monotonic()))
            except TimeoutError:
                pass
        return self.of(kind)

    async def wait_connections(self, n: int, limit: float = 10.0) -> None:
        deadline = time.monotonic() + limit
        while len(self.sockets) < n:
            assert time.monotonic() < deadline, f"expected {n} connections, have {len(self.sockets)}"
            await asyncio.sleep(0.01)

    async def send(self, message: dict[str, Any]) -> None:
        """To the newest connection."""
        await self._send(self.sockets[-1], message)

    async def drop(self) -> None:
        await self.sockets[-1].close()

    # -- the server
    async def _send(self, ws: web.WebSocketResponse, message: dict[str, Any]) -> None:
        self.sent.append((time.monotonic(), message))
        await ws.send_str(json.dumps(message))

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.paths.append(request.path)
        self.sockets.append(ws)
        number = len(self.sockets)
        if self.config:
            await self._send(ws, {"response_type": "config", "config": self.config})
        if self.begin is not None:
            await self._send(ws, {"response_type": "response", "response_id": 0, "content": self.begin,
                                  "content_complete": True, "end_call": False})
        async for msg in ws:
            if msg.type is not WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            self.received.append((number, data))
            self._changed.set()
            kind = data.get("interaction_type")
            if kind == "ping_pong" and self.answer_pings:
                await self._send(ws, {"response_type": "ping_pong", "timestamp": data["timestamp"]})
            elif kind in ("response_required", "reminder_required"):
                held, self._held = self._held, []
                for answer, rid in held:
                    self._spawn(self._answer(ws, answer, rid))
                if self.script:
                    answer = self.script.pop(0)
                    if answer.hold:
                        self._held.append((answer, data["response_id"]))
                    else:
                        self._spawn(self._answer(ws, answer, data["response_id"]))
        return ws

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, ws: web.WebSocketResponse, answer: Answer, rid: int) -> None:
        for text in answer.stale:
            await self._send(ws, {"response_type": "response", "response_id": rid - 1, "content": text,
                                  "content_complete": False})
        await asyncio.sleep(answer.first_delay)
        chunks = answer.chunks or [""]
        for i, text in enumerate(chunks):
            if i:
                await asyncio.sleep(answer.delay[i - 1] if isinstance(answer.delay, list) else answer.delay)
            if answer.drop_after is not None and i >= answer.drop_after:
                await ws.close()
                return
            last = i == len(chunks) - 1
            message: dict[str, Any] = {"response_type": "response", "response_id": rid, "content": text,
                                       "content_complete": last}
            if last and answer.end_call:
                message["end_call"] = True
            await self._send(ws, message)
