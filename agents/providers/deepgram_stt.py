"""Streaming speech-to-text with Deepgram's live websocket through the official `deepgram-sdk` (v7).

Protocol (`wss://api.deepgram.com/v1/listen?model=nova-3&encoding=linear16&sample_rate=16000&channels=1
&interim_results=true…`, header `Authorization: Token <key>`): the client sends binary audio frames and
the JSON control messages `KeepAlive`, `Finalize` and `CloseStream`; the server sends `Results`
(`channel.alternatives[0].transcript`, `start`/`duration` in seconds of the audio received, `is_final`,
`speech_final`, `from_finalize`), `Metadata` (answering `CloseStream`), `UtteranceEnd`, `SpeechStarted`
and `Error`. Handshake failures arrive as HTTP statuses (401 bad key, 400 bad parameters, 429, 5xx); a
socket the server gives up on closes with 1008 (undecodable audio: final) or 1011 (server error or no
audio for ~10 s: transient).

One connection per call, not per utterance: the handshake (TLS + upgrade + auth, 100–400 ms) would
otherwise land on every turn's voice-to-voice latency. It is opened when the stream is created, kept
open between utterances with `KeepAlive` every `keepalive_s` (Deepgram closes a socket that receives
nothing for ~10 s), and reopened only when the next audio arrives if it dropped while idle.

Per utterance (the conversation pushes a finished utterance, then `flush()`): the audio goes out in
100 ms frames; `flush()` sends `Finalize`, and the utterance's final `Transcript` is the `is_final`
segments joined, emitted once Deepgram answers with `from_finalize` (or an `is_final` result that covers
all the audio sent, or `finalize_timeout_s` passed: Deepgram does not always answer a Finalize when
little audio was buffered). Interim results come out as non-final transcripts. Utterances are handled
one at a time, so every final belongs to exactly one flush, in order.

Retries: the current utterance's audio is kept until its final is out. A retryable failure before then
(refused or dropped connection, 429/5xx handshake, 1011 close) reconnects and replays it, within the
retry policy's budget; the budget starts afresh with each utterance. Non-retryable failures (401, 400,
1008) end the stream with a `ProviderError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from .base import FLUSH, ProviderError, QueuedSpeechStream, SpeechToText, Transcript
from .retry import DEFAULT_POLICY, RetryPolicy, is_transport_error, status_error, transport_error
from .tls import async_client, ssl_context

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000  # unless the stream is opened at the line's own rate (8 kHz telephone audio: no resampling)
RATES = (8000, 16000)
DEFAULT_MODEL = "nova-3"
_FRAME_S = 0.1  # audio per websocket frame
_MAX_REPLAY_S = 60  # audio kept for a replay after a reconnect
_COVER_SLACK_S = 0.05  # an is_final result ending this close to the end covers it
_MAX_KEYTERMS = 50


@functools.cache
def _tune_sdk_socket() -> None:
    """The SDK opens its websocket with the library's defaults and no way to pass options: permessage-deflate
    (zlib over every 100 ms audio frame, on the event loop, for PCM that hardly compresses) and, for wss, a
    fresh TLS context per connection (the CA bundle parsed again: 30-55 ms of the event loop per call). Its
    connect function is wrapped once so that sockets go uncompressed and share `tls.ssl_context()`."""
    from deepgram.listen.v1 import client, raw_client

    for module in (client, raw_client):  # the client's connect() is its own copy of the raw client's
        connect = module.websockets_client_connect

        def uncompressed(uri: str, *, _connect: Any = connect, **kwargs: Any) -> Any:
            kwargs.setdefault("compression", None)
            if uri.startswith("wss:"):
                kwargs.setdefault("ssl", ssl_context())
            return _connect(uri, **kwargs)

        module.websockets_client_connect = uncompressed  # type: ignore[attr-defined]


def environment(base_url: str | None) -> Any:
    """A `DeepgramClientEnvironment` for `base_url` (http(s) or ws(s); the production one when None)."""
    from deepgram.environment import DeepgramClientEnvironment

    if not base_url:
        return DeepgramClientEnvironment.PRODUCTION
    parts = urlsplit(base_url.rstrip("/"))
    secure = parts.scheme in ("https", "wss")
    http = urlunsplit(("https" if secure else "http", parts.netloc, parts.path, "", ""))
    ws = urlunsplit(("wss" if secure else "ws", parts.netloc, parts.path, "", ""))
    return DeepgramClientEnvironment(base=http, production=ws, agent=ws, agent_rest=http)


def classify(exc: BaseException, *, produced: bool = False) -> ProviderError:
    """What the SDK and the websocket library raise → ProviderError with its verdict."""
    from deepgram.core.api_error import ApiError
    from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, ApiError):
        return status_error(exc.status_code or 0, str(exc.body), provider="deepgram", produced=produced)
    if isinstance(exc, ConnectionClosed):
        frame = exc.rcvd
        code, reason = (frame.code, frame.reason) if frame is not None else (1006, "no close frame")
        if code == 1008:  # policy: Deepgram could not decode the audio (DATA-0000)
            return ProviderError(f"closed {code}: {reason}", retryable=False, reason="bad_request",
                                 provider="deepgram")
        return ProviderError(f"closed {code}: {reason}", retryable=not produced, reason="connection",
                             provider="deepgram")
    if isinstance(exc, InvalidURI):
        return ProviderError(str(exc), retryable=False, reason="bad_request", provider="deepgram")
    if isinstance(exc, InvalidHandshake) or is_transport_error(exc):
        return transport_error(exc, provider="deepgram", produced=produced)
    return ProviderError(f"{type(exc).__name__}: {exc}", retryable=False, reason="error", provider="deepgram")


class DeepgramSTT(SpeechToText):
    streaming = True  # takes audio as it comes: the conversation streams each turn and flushes at pauses

    def __init__(self, *, api_key: str, model: str = DEFAULT_MODEL, language: str | None = "en-US",
                 base_url: str | None = None, interim_results: bool = True, smart_format: bool = True,
                 keepalive_s: float = 5.0, finalize_timeout_s: float = 2.0, connect_timeout_s: float = 5.0,
                 policy: RetryPolicy = DEFAULT_POLICY, client: Any | None = None,
                 sample_rate: int = SAMPLE_RATE) -> None:
        from deepgram import AsyncDeepgramClient

        if sample_rate not in RATES:
            raise ValueError(f"sample_rate must be one of {RATES}, got {sample_rate}")
        self.sample_rate = sample_rate  # what the conversation sends: a telephone line's 8 kHz as it is

        self.model, self.language = model, (language if language and language != "multilingual" else None)
        self.interim_results, self.smart_format = interim_results, smart_format
        self.keepalive_s, self.finalize_timeout_s, self.connect_timeout_s = keepalive_s, finalize_timeout_s, \
            connect_timeout_s
        self.policy = policy
        _tune_sdk_socket()
        self.client = client or AsyncDeepgramClient(api_key=api_key, environment=environment(base_url),
                                                       httpx_client=async_client(timeout=60, follow_redirects=True))

    def stream(self, *, phrases: Sequence[str] | None = None) -> DeepgramStream:
        return DeepgramStream(self, list(phrases or ()))

    def connect_params(self, phrases: Sequence[str]) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": self.model, "encoding": "linear16", "sample_rate": self.sample_rate, "channels": 1,
            "interim_results": self.interim_results, "punctuate": True, "smart_format": self.smart_format,
        }
        if self.language:
            params["language"] = self.language
        if phrases and self.model.startswith("nova-3"):
            params["keyterm"] = list(dict.fromkeys(p.strip() for p in phrases if p.strip()))[:_MAX_KEYTERMS]
        return params




@dataclass
class _Utterance:
    start: int  # stream sample where its audio begins
    audio: list[np.ndarray] = field(default_factory=list)
    samples: int = 0
    flushed_at: float | None = None  # perf_counter of flush(): latency is measured from it
    finalize_seq: int = 0  # which Finalize (on the current connection) flushes it
    covered_to: int = 0  # stream sample up to which is_final results have come
    segments: list[tuple[str, float | None, float | None, float | None]] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def end(self) -> int:
        return self.start + self.samples


class _Closed(Exception):
    """The socket ended after our CloseStream: the stream is over."""


class DeepgramStream(QueuedSpeechStream):
    def __init__(self, stt: DeepgramSTT, phrases: list[str]) -> None:
        super().__init__()
        self._stt = stt
        self._rate = rate = stt.sample_rate
        self._frame, self._max_replay = int(rate * _FRAME_S), _MAX_REPLAY_S * rate
        self._slack = int(rate * _COVER_SLACK_S)
        self._params = stt.connect_params(phrases)
        self._samples = 0  # pushed and taken into an utterance: the stream's clock
        self._utt: _Utterance | None = None
        self._conn_base = 0  # stream sample at which the current connection's audio begins
        self._finalizes_sent = 0  # on the current connection
        self._finalizes_answered = 0  # results with from_finalize on the current connection
        self._attempts = 0  # failures in the current retry window
        self._window_t0 = 0.0
        self.connections = 0  # opened so far (tests, metrics)
        self._start("stt-deepgram")


    # ---- the stream's one task: connections, one after another
    async def _main(self) -> None:
        eager = True  # open the first connection at once: the first utterance should not pay for it
        try:
            while True:
                if not eager and not self._ops and self._utt is None:
                    self._wake.clear()
                    await self._wake.wait()  # idle after a drop: reconnect when there is work
                    continue
                eager = False
                try:
                    await self._connection()
                    return
                except _Closed:
                    return
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    err = classify(exc)
                    wait = self._retry_delay(err)
                    if wait is None:
                        raise err from exc
                    log.warning("deepgram: %s (%s); reconnecting in %.2f s (retry %d)", err.message, err.reason,
                                wait, self._attempts)
                    await asyncio.sleep(wait)
        except asyncio.CancelledError:
            raise
        except ProviderError as e:
            self._events.put_nowait(e)
        except Exception as e:
            self._events.put_nowait(classify(e))
        finally:
            self._events.put_nowait(None)

    def _retry_delay(self, err: ProviderError) -> float | None:
        if not err.retryable:
            return None
        if self._utt is None and not self._ops:
            self._attempts = 0  # dropped while idle: nothing lost; the next utterance reconnects
            return 0.0
        now = time.monotonic()
        if self._attempts == 0:
            self._window_t0 = now
        self._attempts += 1
        return self._stt.policy.delay(self._attempts, now - self._window_t0)

    async def _connection(self) -> None:
        stt = self._stt
        async with contextlib.AsyncExitStack() as stack:
            async with asyncio.timeout(stt.connect_timeout_s):
                socket = await stack.enter_async_context(stt.client.listen.v1.connect(**self._params))
            self.connections += 1
            reader = asyncio.get_running_loop().create_task(self._read(socket), name="stt-deepgram-read")
            stack.push_async_callback(_cancel, reader)
            last_sent = time.monotonic()
            utt = self._utt
            self._conn_base = utt.start if utt is not None else self._samples
            self._finalizes_sent = self._finalizes_answered = 0
            if utt is not None:  # a replay after a reconnect: its results so far are void
                utt.segments.clear()
                utt.covered_to = utt.start
                utt.done.clear()
                for chunk in utt.audio:
                    await self._send_audio(socket, chunk)
                if utt.flushed_at is not None:
                    await self._finalize(socket, utt, reader)
                last_sent = time.monotonic()
            while True:
                if reader.done():
                    reader.result()  # raises the reader's failure
                    raise ProviderError("the connection ended", retryable=True, reason="connection",
                                        provider="deepgram")
                if not self._ops:
                    self._wake.clear()
                    idle_for = stt.keepalive_s - (time.monotonic() - last_sent)
                    if idle_for <= 0:
                        await socket.send_keep_alive()
                        last_sent = time.monotonic()
                        continue
                    await _wait_either(self._wake, reader, idle_for)
                    continue
                op = self._ops.popleft()
                if isinstance(op, np.ndarray):
                    if self._utt is None:
                        self._utt = _Utterance(start=self._samples, covered_to=self._samples)
                    utt = self._utt
                    self._samples += len(op)
                    utt.samples += len(op)
                    if sum(len(a) for a in utt.audio) + len(op) <= self._max_replay:
                        utt.audio.append(op)
                    await self._send_audio(socket, op)
                elif op == FLUSH:
                    utt = self._utt
                    if utt is None:
                        continue  # like the local recogniser: no audio, no transcript
                    utt.flushed_at = time.perf_counter()
                    await self._finalize(socket, utt, reader)
                else:  # END
                    await socket.send_close_stream()
                    with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
                        async with asyncio.timeout(stt.finalize_timeout_s):
                            await asyncio.shield(reader)
                    raise _Closed
                last_sent = time.monotonic()

    async def _send_audio(self, socket: Any, pcm: np.ndarray) -> None:
        step = self._frame
        for i in range(0, len(pcm), step):
            await socket.send_media(pcm[i : i + step].astype("<i2").tobytes())

    async def _finalize(self, socket: Any, utt: _Utterance, reader: asyncio.Task[None]) -> None:
        """Send Finalize; wait until Deepgram has finalized the utterance (or the timeout); emit its final."""
        self._finalizes_sent += 1
        utt.finalize_seq = self._finalizes_sent
        await socket.send_finalize()
        if utt.covered_to >= utt.end - self._slack:
            utt.done.set()  # is_final results already cover all of its audio
        await _wait_either(utt.done, reader, self._stt.finalize_timeout_s)
        if not utt.done.is_set():
            if reader.done():
                reader.result()  # the connection failed: the caller reconnects and replays
                raise ProviderError("the connection ended before the final transcript", retryable=True,
                                    reason="connection", provider="deepgram")
            log.info("deepgram: no from_finalize answer within %.1f s; using the results so far",
                     self._stt.finalize_timeout_s)
        self._emit_final(utt)

    def _emit_final(self, utt: _Utterance) -> None:
        text = " ".join(s[0] for s in utt.segments if s[0]).strip()
        starts = [s[1] for s in utt.segments if s[0] and s[1] is not None]
        ends = [s[2] for s in utt.segments if s[0] and s[2] is not None]
        confs = [s[3] for s in utt.segments if s[0] and s[3] is not None]
        base_ms = self._conn_base * 1000 // self._rate
        start_ms = base_ms + int(min(starts) * 1000) if starts else utt.start * 1000 // self._rate
        end_ms = base_ms + int(max(ends) * 1000) if ends else utt.end * 1000 // self._rate
        latency = (time.perf_counter() - utt.flushed_at) * 1000.0 if utt.flushed_at is not None else 0.0
        self._events.put_nowait(Transcript(text, True, start_ms, max(start_ms, end_ms), latency,
                                           sum(confs) / len(confs) if confs else None))
        self._utt = None
        self._attempts = 0  # a fresh retry budget for the next utterance

    # ---- the connection's reader
    async def _read(self, socket: Any) -> None:
        from deepgram.listen.v1.types import ListenV1Error, ListenV1Results

        async for msg in socket:
            if isinstance(msg, ListenV1Results):
                self._on_results(msg)
            elif isinstance(msg, ListenV1Error):
                raise ProviderError(f"{msg.description or msg.message or msg.variant}", retryable=True,
                                    reason="server_error", provider="deepgram")
        # The server closed the socket normally; only expected after our CloseStream.
        if not self._input_ended:
            raise ProviderError("Deepgram closed the connection", retryable=True, reason="connection",
                                provider="deepgram")

    def _on_results(self, msg: Any) -> None:
        utt = self._utt
        if utt is None:
            return  # results for audio already finalized (late duplicates)
        alts = msg.channel.alternatives if msg.channel is not None else []
        alt = alts[0] if alts else None
        text = (alt.transcript if alt is not None else "") or ""
        if msg.from_finalize:
            self._finalizes_answered += 1
        reached = self._conn_base + round((msg.start + msg.duration) * self._rate)
        if msg.is_final:
            if reached > utt.start + self._slack:  # not a late result for an earlier utterance's audio
                words = (alt.words if alt is not None else None) or []
                start = words[0].start if words else msg.start
                end = words[-1].end if words else msg.start + msg.duration
                utt.segments.append((text.strip(), start, end,
                                     alt.confidence if alt is not None and text else None))
                utt.covered_to = max(utt.covered_to, reached)
        elif text and self._stt.interim_results:
            so_far = " ".join([s[0] for s in utt.segments if s[0]] + [text.strip()])
            base_ms = self._conn_base * 1000 // self._rate
            self._events.put_nowait(Transcript(so_far, False, utt.start * 1000 // self._rate,
                                               base_ms + int((msg.start + msg.duration) * 1000)))
        finalized = utt.finalize_seq > 0 and self._finalizes_answered >= utt.finalize_seq
        if utt.flushed_at is not None and (finalized or utt.covered_to >= utt.end - self._slack):
            utt.done.set()


async def _wait_either(event: asyncio.Event, task: asyncio.Task[Any], seconds: float) -> None:
    """Until `event` is set, `task` ends, or `seconds` pass."""
    if event.is_set() or task.done():
        return
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({waiter, task}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()


async def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
