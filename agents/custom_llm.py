"""The ``custom-llm`` engine: the agent's words come from the customer's own server, over a websocket.

At call start the engine connects to ``{llm_websocket_url}/{call_id}`` (the call id as the last path
segment, before any query string, as Retell does; it is also in ``call_details``). Every message is one
JSON text frame. The protocol follows Retell AI's LLM websocket:

switchboard → customer (``interaction_type``):
  ``{"interaction_type": "ping_pong", "timestamp": ms}``                 every ``ping_interval``, and the
                                                                          answer to each of the customer's pings
  ``{"interaction_type": "call_details", "call": {call_id, agent_id, from_number, to_number, direction,
    metadata, user_data}}``                                               when the customer's config asks
  ``{"interaction_type": "update_only", "transcript": [...]}``            an agent turn was added or changed
  ``{"interaction_type": "response_required", "response_id": n, "transcript": [...]}``  the caller's turn
  ``{"interaction_type": "reminder_required", "response_id": n, "transcript": [...]}``  caller silent
  (transcript: ``[{"role": "agent" | "user", "content": str}, ...]``, the whole call so far)

customer → switchboard (``response_type``):
  ``{"response_type": "config", "config": {"auto_reconnect": bool, "call_details": bool}}``
  ``{"response_type": "ping_pong", "timestamp": ms}``
  ``{"response_type": "response", "response_id": n, "content": str, "content_complete": bool,
    "end_call": bool}``   streamed: chunks with the same ``response_id`` until ``content_complete``
  ``{"response_type": "agent_interrupt", "interrupt_id": n, "content": str, "content_complete": bool,
    "end_call": bool}``   speak now, unprompted (streamed like a response; no ``interrupt_id``: one message)

Rules as implemented:
- ``response_id``s increase by one per request (1, 2, ...). Only the newest request is answered: chunks for
  any other id, or after ``content_complete``, are dropped (counted in ``dropped``). A ``response`` with
  ``response_id`` 0 before our first request is the customer's begin message (spoken like an interrupt;
  ignored after a reconnect, where servers tend to send it again).
- ``end_call: true`` ends the reply (implies ``content_complete``); the call hangs up after it is spoken
  (a ``ToolOutcome`` with ``action="end_call"``, as the llm engine's end_call tool).
- ``agent_interrupt``s come out of ``pushes()``: one event stream per interrupt, which the conversation
  speaks at once as a new agent turn, cutting off whatever the agent was saying.
- The transcript is kept here, from what passes through the engine: ``respond()`` adds the caller's turn,
  streamed content the agent's, ``add_assistant()`` the begin message, ``interrupted(heard)`` cuts the agent
  turn down to what the caller heard. ``update_only`` goes out when an agent turn is complete or cut.
- Keepalive: our ``ping_pong`` every ``ping_interval`` s; the customer's pings are answered (not our own
  pings coming back, nor a ping we have already answered, so two echoing peers cannot loop). With
  ``auto_reconnect`` in the customer's config, a connection silent for ``ping_timeout`` s is dropped.
- A lost connection fails the reply being streamed (``ProviderError``, retryable: the conversation speaks
  its apology) and is reconnected at once, once per loss (up to ``max_reconnects`` per call); a turn that
  finds no connection tries to connect once more before failing. Connect failures are ``ProviderError``s
  (retryable). Addresses that are not public are refused unless ``allow_private``.
- Not implemented: ``tool_call_invocation``/``tool_call_result``/``update_agent``/``metadata`` messages
  (ignored) and ``no_interruption_allowed`` (caller barge-in still works).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import aiohttp

from . import netguard
from .llm_turn import TurnEvent, TurnStats
from .providers.base import ProviderError, TextDelta, ToolCall
from .tools import ToolOutcome

log = logging.getLogger(__name__)

PROVIDER = "custom-llm"


def socket_url(base: str, call_id: str) -> str:
    """``wss://host/llm?x=1`` + ``abc`` → ``wss://host/llm/abc?x=1``."""
    parts = urlsplit(base)
    path = parts.path.rstrip("/") + "/" + quote(call_id, safe="")
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


class _Stream:
    """One reply the customer streams: the answer to a request, or an agent_interrupt."""

    def __init__(self, key: Any) -> None:
        self.key = key
        self.queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.done = False

    def feed(self, msg: dict[str, Any]) -> None:
        if self.done:
            return
        content = msg.get("content")
        if isinstance(content, str) and content:
            self.queue.put_nowait(("content", content))
        if msg.get("end_call"):
            self.queue.put_nowait(("end_call", None))
        if msg.get("content_complete") or msg.get("end_call"):
            self.done = True
            self.queue.put_nowait(("done", None))

    def fail(self, error: ProviderError) -> None:
        if not self.done:
            self.done = True
            self.queue.put_nowait(("error", error))


@dataclass(eq=False)
class _Connection:
    ws: aiohttp.ClientWebSocketResponse
    outbox: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    last_rx: float = field(default_factory=time.monotonic)


class CustomLlmEngine:
    """A ``ResponseEngine`` over the customer's websocket; ``start()`` connects in the background."""

    def __init__(self, url: str, call_id: str, details: dict[str, Any] | None = None, *,
                 allow_private: bool = False, ping_interval: float = 2.0, ping_timeout: float = 5.0,
                 connect_timeout: float = 5.0, response_timeout: float = 15.0, max_reconnects: int = 3) -> None:
        self.url = socket_url(url, call_id)
        self.call_id = call_id
        self.details = {**(details or {}), "call_id": call_id}
        self.allow_private = allow_private
        self.ping_interval, self.ping_timeout = ping_interval, ping_timeout
        self.connect_timeout, self.response_timeout = connect_timeout, response_timeout
        self.max_reconnects = max_reconnects
        self.stats = TurnStats()
        self.transcript: list[dict[str, str]] = []
        self.config: dict[str, Any] = {}
        self.dropped = 0  # response messages dropped as stale or unknown
        self.connections = 0  # connections made so far
        self._session: aiohttp.ClientSession | None = None
        self._conn: _Connection | None = None
        self._connecting: asyncio.Task[_Connection] | None = None
        self._reconnects = 0
        self._last_id = 0
        self._requested = False
        self._current: _Stream | None = None  # the newest request's reply
        self._interrupts: dict[Any, _Stream] = {}
        self._interrupts_done: deque[Any] = deque(maxlen=64)
        self._pushes: asyncio.Queue[AsyncIterator[TurnEvent] | None] = asyncio.Queue()
        self._speaking: dict[str, str] | None = None  # the transcript entry of the agent's latest turn
        self._sent_pings: deque[int] = deque(maxlen=16)
        self._answered_pings: deque[Any] = deque(maxlen=16)
        self._last_ts = 0
        self._closed = False

    # -- ResponseEngine --------------------------------------------------------------------------------
    def start(self) -> None:
        """Connect now (the call is starting), without waiting: turns wait for the connection."""
        if self._conn is None and self._connecting is None:
            self._connecting = self._spawn_connect()

    async def respond(self, user_text: str) -> AsyncIterator[TurnEvent]:
        self.transcript.append({"role": "user", "content": user_text})
        self._speaking = None
        async for event in self._request("response_required"):
            yield event

    async def remind(self) -> AsyncIterator[TurnEvent]:
        self._speaking = None
        async for event in self._request("reminder_required"):
            yield event

    def add_assistant(self, text: str) -> None:
        """The agent's configured begin message was spoken."""
        self._speaking = {"role": "agent", "content": text}
        self.transcript.append(self._speaking)
        self._update()

    def interrupted(self, heard: str) -> None:
        entry = self._speaking
        if entry is None or entry["content"] == heard:
            return
        entry["content"] = heard
        if not heard:
            with contextlib.suppress(ValueError):
                self.transcript.remove(entry)
            self._speaking = None
        self._update()

    async def pushes(self) -> AsyncIterator[AsyncIterator[TurnEvent]]:
        """What the customer wants said unprompted (agent_interrupt, begin message): one event stream each,
        as ``respond()`` yields them. Ends when the engine closes."""
        while True:
            item = await self._pushes.get()
            if item is None:
                return
            yield item

    async def aclose(self) -> None:
        self._closed = True
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
            with contextlib.suppress(BaseException):
                await self._connecting
        conn, self._conn = self._conn, None
        if conn is not None:
            for task in conn.tasks:
                task.cancel()
            await asyncio.gather(*conn.tasks, return_exceptions=True)
            with contextlib.suppress(Exception):
                await conn.ws.close()
        if self._session is not None:
            await self._session.close()
        closed = ProviderError("the call ended", retryable=False, reason="closed", provider=PROVIDER)
        for stream in [self._current, *self._interrupts.values()]:
            if stream is not None:
                stream.fail(closed)
        self._pushes.put_nowait(None)

    # -- requests and replies --------------------------------------------------------------------------
    async def _request(self, kind: str) -> AsyncIterator[TurnEvent]:
        self.stats = TurnStats(rounds=1)
        conn = await self._connection()
        self._last_id += 1
        stream = _Stream(self._last_id)
        self._current, self._requested = stream, True
        conn.outbox.put_nowait({"interaction_type": kind, "response_id": stream.key,
                                "transcript": self._transcript()})
        async for event in self._events(stream, sent=time.perf_counter()):
            yield event

    async def _events(self, stream: _Stream, *, sent: float | None) -> AsyncIterator[TurnEvent]:
        """A reply's events as its messages arrive; the agent's transcript entry grows with them."""
        entry: dict[str, str] | None = None
        try:
            while True:
                try:
                    kind, value = await asyncio.wait_for(stream.queue.get(), self.response_timeout)
                except TimeoutError:
                    raise ProviderError(f"no reply from the custom LLM in {self.response_timeout:g} s",
                                        retryable=True, reason="timeout", provider=PROVIDER) from None
                if kind == "content":
                    if entry is None:
                        entry = self._speaking = {"role": "agent", "content": ""}
                        self.transcript.append(entry)
                        if sent is not None:
                            self.stats.ttft_ms = (time.perf_counter() - sent) * 1000.0
                    entry["content"] += value
                    yield TextDelta(value)
                elif kind == "end_call":
                    call = ToolCall(f"{PROVIDER}-{stream.key}", "end_call", "{}")
                    yield ToolOutcome(call, "The call ends after this reply.", action="end_call")
                elif kind == "error":
                    raise value
                else:
                    break
        finally:
            stream.done = True  # whatever comes for it later is stale
            if self._current is stream:
                self._current = None
        if entry is not None:
            self._update()

    def _transcript(self) -> list[dict[str, str]]:
        return [{"role": e["role"], "content": e["content"]} for e in self.transcript if e["content"]]

    def _update(self) -> None:
        self._send({"interaction_type": "update_only", "transcript": self._transcript()})

    def _send(self, message: dict[str, Any]) -> None:
        if self._conn is not None:
            self._conn.outbox.put_nowait(message)

    # -- messages from the customer --------------------------------------------------------------------
    def _on_message(self, conn: _Connection, msg: dict[str, Any]) -> None:
        kind = msg.get("response_type")
        if kind == "ping_pong":
            self._on_ping(conn, msg.get("timestamp"))
        elif kind == "config":
            config = msg.get("config")
            if isinstance(config, dict):
                self.config.update(config)
                if config.get("call_details"):
                    conn.outbox.put_nowait({"interaction_type": "call_details", "call": self.details})
        elif kind == "response":
            self._on_response(msg)
        elif kind == "agent_interrupt":
            key = msg.get("interrupt_id")
            if key is None:  # no id: the message is the whole interrupt
                key, msg = object(), {**msg, "content_complete": True}
            self._stream_push(("interrupt", key), msg)
        else:
            log.debug("custom LLM %s: ignored %r message", self.call_id, kind)

    def _on_response(self, msg: dict[str, Any]) -> None:
        rid, current = msg.get("response_id"), self._current
        if current is not None and not current.done and rid == current.key:
            current.feed(msg)
        elif rid == 0 and not self._requested and self.connections == 1:
            self._stream_push(("begin", 0), msg)
        else:
            self.dropped += 1
            log.info("custom LLM %s: dropped a response to %r (current: %r)", self.call_id, rid,
                     current.key if current is not None else None)

    def _stream_push(self, key: Any, msg: dict[str, Any]) -> None:
        stream = self._interrupts.get(key)
        if stream is not None and stream.done:  # cut off by another push meanwhile
            del self._interrupts[key]
            self._interrupts_done.append(key)
            stream = None
        if stream is None:
            if key in self._interrupts_done:
                self.dropped += 1
                return
            stream = self._interrupts[key] = _Stream(key)
            self._pushes.put_nowait(self._events(stream, sent=None))
        stream.feed(msg)
        if stream.done:
            del self._interrupts[key]
            self._interrupts_done.append(key)

    def _on_ping(self, conn: _Connection, ts: Any) -> None:
        if ts is not None and (ts in self._sent_pings or ts in self._answered_pings):
            return  # the answer to one of ours, or one we answered: never ping-pong forever
        self._answered_pings.append(ts)
        conn.outbox.put_nowait({"interaction_type": "ping_pong", "timestamp": ts if ts is not None
                                else self._timestamp()})

    def _timestamp(self) -> int:
        self._last_ts = max(int(time.time() * 1000), self._last_ts + 1)
        return self._last_ts

    # -- the connection --------------------------------------------------------------------------------
    def _live(self) -> _Connection | None:
        conn = self._conn
        return conn if conn is not None and not conn.ws.closed else None

    async def _connection(self) -> _Connection:
        if self._closed:
            raise ProviderError("the call ended", retryable=False, reason="closed", provider=PROVIDER)
        if (conn := self._live()) is not None:
            return conn
        task = self._connecting
        if task is None or task.done():  # nothing under way (or the last attempt failed earlier): once more
            task = self._connecting = self._spawn_connect()
        await asyncio.shield(task)  # a turn cancelled meanwhile does not cancel the connecting
        if (conn := self._live()) is None:
            raise ProviderError("the custom LLM closed the connection", retryable=True,
                                reason="connection_closed", provider=PROVIDER)
        return conn

    def _spawn_connect(self) -> asyncio.Task[_Connection]:
        task = asyncio.get_running_loop().create_task(self._connect(), name=f"custom-llm-connect-{self.call_id}")
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # failures are read by the turns
        return task

    async def _connect(self) -> _Connection:
        try:
            url = netguard.check_url(self.url, allow_private=self.allow_private, schemes=netguard.WEBSOCKET)
        except netguard.Blocked as exc:
            reason = "forbidden_address" if exc.kind == "address" else "bad_url"
            raise ProviderError(f"custom LLM websocket refused: {exc}", retryable=False, reason=reason,
                                provider=PROVIDER) from None
        if self._session is None:  # every connection checked where it is made (resolved once, no rebinding)
            self._session = netguard.guarded_session(allow_private=self.allow_private)
        try:
            async with asyncio.timeout(self.connect_timeout):
                ws = await self._session.ws_connect(url, timeout=aiohttp.ClientWSTimeout(ws_close=2.0),
                                                    max_msg_size=1 << 20)
        except aiohttp.ClientConnectorError as exc:
            if (refused := netguard.refusal(exc)) is not None:
                raise ProviderError(refused, retryable=False, reason="forbidden_address", provider=PROVIDER) from exc
            raise self._connect_error(exc) from exc
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise self._connect_error(exc) from exc
        if self._closed:
            await ws.close()
            raise ProviderError("the call ended", retryable=False, reason="closed", provider=PROVIDER)
        conn = _Connection(ws)
        self._conn = conn
        self.connections += 1
        loop = asyncio.get_running_loop()
        conn.tasks = [loop.create_task(self._read(conn), name=f"custom-llm-read-{self.call_id}"),
                      loop.create_task(self._write(conn), name=f"custom-llm-write-{self.call_id}"),
                      loop.create_task(self._ping(conn), name=f"custom-llm-ping-{self.call_id}")]
        log.info("custom LLM %s: connected to %s", self.call_id, self.url)
        return conn

    def _connect_error(self, exc: BaseException) -> ProviderError:
        return ProviderError(f"custom LLM websocket {self.url}: {exc or type(exc).__name__}", retryable=True,
                             reason="connect_failed", provider=PROVIDER)

    async def _read(self, conn: _Connection) -> None:
        try:
            async for msg in conn.ws:
                conn.last_rx = time.monotonic()
                if msg.type is aiohttp.WSMsgType.TEXT:
                    try:
                        data = json.loads(msg.data)
                    except ValueError:
                        log.warning("custom LLM %s: a message that is not JSON", self.call_id)
                        continue
                    if isinstance(data, dict):
                        self._on_message(conn, data)
                elif msg.type is aiohttp.WSMsgType.ERROR:
                    break
        finally:
            with contextlib.suppress(Exception):
                await conn.ws.close()
            self._lost(conn)

    async def _write(self, conn: _Connection) -> None:
        while True:
            message = await conn.outbox.get()
            try:
                await conn.ws.send_str(json.dumps(message, default=str))
            except (ConnectionError, aiohttp.ClientError, RuntimeError) as exc:
                log.warning("custom LLM %s: send failed: %s", self.call_id, exc)
                await conn.ws.close()  # the reader sees the end and handles the loss
                return

    async def _ping(self, conn: _Connection) -> None:
        while True:
            await asyncio.sleep(self.ping_interval)
            if self.config.get("auto_reconnect") and time.monotonic() - conn.last_rx > self.ping_timeout:
                log.warning("custom LLM %s: silent for %g s: reconnecting", self.call_id, self.ping_timeout)
                await conn.ws.close()
                return
            ts = self._timestamp()
            self._sent_pings.append(ts)
            conn.outbox.put_nowait({"interaction_type": "ping_pong", "timestamp": ts})

    def _lost(self, conn: _Connection) -> None:
        me = asyncio.current_task()
        for task in conn.tasks:
            if task is not me:
                task.cancel()
        if conn is not self._conn or self._closed:
            return
        self._conn = None
        error = ProviderError("the custom LLM closed the connection", retryable=True,
                              reason="connection_closed", provider=PROVIDER)
        for stream in [self._current, *self._interrupts.values()]:
            if stream is not None:
                stream.fail(error)
        self._interrupts.clear()
        if self._reconnects < self.max_reconnects:
            self._reconnects += 1
            log.warning("custom LLM %s: connection lost: reconnecting", self.call_id)
            self._connecting = self._spawn_connect()
        else:
            log.warning("custom LLM %s: connection lost (no reconnects left)", self.call_id)
