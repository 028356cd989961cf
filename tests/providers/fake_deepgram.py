"""A loopback server speaking Deepgram's live streaming protocol (`/v1/listen` websocket), scripted per test.

What it checks of the client: the `Authorization: Token <key>` header, the query parameters (kept per
connection for the test to assert), binary frames of whole 16-bit samples, and JSON control messages of
the documented types only (`KeepAlive`, `Finalize`, `CloseStream`).

What it answers, as Deepgram does: interim `Results` (`is_final: false`) once some audio of an utterance
has arrived; on `Finalize`, the utterance's `Results` with `is_final`, `speech_final`, `from_finalize`,
words timed within the audio received since the previous Finalize (seconds from the connection's start);
on `CloseStream`, a `Metadata` message and a normal close. Scripted failures: a refused handshake (HTTP
status), a close with a code (1011 server error, 1008 undecodable data) after some audio, an `Error`
message (then a 1011 close). Each connection takes the next entry of `connections` (default: serve).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.support.loopback_http import serve_on_loopback


@dataclass
class Say:
    """The answer to one Finalize."""

    text: str
    interim: str | None = None  # sent once the utterance's first 100 ms have arrived
    confidence: float = 0.93
    from_finalize: bool = True  # False: an is_final result without the flag (covers the audio)
    silent: bool = False  # answer the Finalize with nothing at all
    delay: float = 0.0


@dataclass
class Serve:
    pass


@dataclass
class Refuse:
    status: int
    body: str = '{"err_code":"INVALID_AUTH","err_msg":"Invalid credentials."}'


@dataclass
class Drop:
    after_bytes: int = 0  # close once this much audio has arrived on the connection
    code: int = 1011
    reason: str = "NET-0000: internal server error"
    on_finalize: bool = False  # close when the Finalize arrives instead


@dataclass
class SendError:
    after_bytes: int = 0
    description: str = "Something went wrong"


@dataclass
class Connection:
    """What one connection saw."""

    query: dict[str, Any]
    headers: dict[str, str]
    query_string: str = ""
    audio: bytearray = field(default_factory=bytearray)
    messages: list[str] = field(default_factory=list)  # control message types, in order
    finalize_audio: list[bytes] = field(default_factory=list)  # the audio each Finalize closed


class FakeDeepgram:
    def __init__(self, key: str = "dg-test-key") -> None:
        self.key = key
        self.connections: list[Serve | Refuse | Drop | SendError] = []
        self.script: list[Say] = []
        self.seen: list[Connection] = []
        self.refused: list[int] = []
        self.problems: list[str] = []  # protocol violations by the client
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def start(self) -> FakeDeepgram:
        app = web.Application()
        app.router.add_get("/v1/listen", self._listen)
        self._runner, port = await serve_on_loopback(app)
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def _listen(self, request: web.Request) -> web.StreamResponse:
        plan = self.connections.pop(0) if self.connections else Serve()
        if request.headers.get("Authorization") != f"Token {self.key}":
            self.refused.append(401)
            return web.Response(status=401, text=Refuse(401).body, content_type="application/json")
        if isinstance(plan, Refuse):
            self.refused.append(plan.status)
            return web.Response(status=plan.status, text=plan.body, content_type="application/json")
        conn = Connection(dict(request.query), dict(request.headers), request.query_string)
        bps = 2 * int(request.query.get("sample_rate", "16000"))  # linear16 mono
        self.seen.append(conn)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        utt = bytearray()  # audio since the last Finalize
        utt_start = 0  # byte offset of `utt` in the connection
        interim_sent = False
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                if len(msg.data) % 2:
                    self.problems.append("odd-length audio frame")
                conn.audio += msg.data
                utt += msg.data
                if isinstance(plan, Drop) and not plan.on_finalize and len(conn.audio) >= plan.after_bytes:
                    await ws.close(code=plan.code, message=plan.reason.encode())
                    break
                if isinstance(plan, SendError) and len(conn.audio) >= plan.after_bytes:
                    await ws.send_json({"type": "Error", "variant": "error", "description": plan.description,
                                        "message": plan.description})
                    await ws.close(code=1011, message=b"error")
                    break
                say = self.script[0] if self.script else None
                if say is not None and say.interim and not interim_sent and len(utt) >= 3200:
                    interim_sent = True
                    await ws.send_json(_results(say.interim, utt_start, len(utt), bps, is_final=False,
                                                confidence=say.confidence))
            elif msg.type == WSMsgType.TEXT:
                try:
                    data = json.loads(msg.data)
                except ValueError:
                    self.problems.append(f"non-JSON text frame {msg.data[:40]!r}")
                    continue
                kind = data.get("type")
                conn.messages.append(kind)
                if kind == "KeepAlive":
                    continue
                if kind == "Finalize":
                    if isinstance(plan, Drop) and plan.on_finalize:
                        await ws.close(code=plan.code, message=plan.reason.encode())
                        break
                    conn.finalize_audio.append(bytes(utt))
                    say = self.script.pop(0) if self.script else Say("")
                    if say.delay:
                        await asyncio.sleep(say.delay)
                    if not say.silent:
                        await ws.send_json(_results(say.text, utt_start, len(utt), bps, is_final=True,
                                                    confidence=say.confidence, from_finalize=say.from_finalize))
                    utt_start += len(utt)
                    utt = bytearray()
                    interim_sent = False
                elif kind == "CloseStream":
                    await ws.send_json({"type": "Metadata", "transaction_key": "deprecated",
                                        "request_id": str(uuid.uuid4()), "sha256": "0" * 64,
                                        "created": "2025-01-01T00:00:00.000Z",
                                        "duration": len(conn.audio) / bps, "channels": 1})
                    await ws.close()
                    break
                else:
                    self.problems.append(f"unknown control message {kind!r}")
        return ws


def _results(text: str, start_byte: int, length: int, bytes_per_second: int, *, is_final: bool,
             confidence: float, from_finalize: bool = False) -> dict[str, Any]:
    start, duration = start_byte / bytes_per_second, length / bytes_per_second
    words = text.split()
    step = duration / (len(words) + 1) if words else 0.0
    message: dict[str, Any] = {
        "type": "Results", "channel_index": [0, 1], "duration": duration, "start": start,
        "is_final": is_final, "speech_final": is_final,
        "channel": {"alternatives": [{
            "transcript": text, "confidence": confidence,
            "words": [{"word": w.lower().strip(".,?!"), "start": start + step * (i + 0.5),
                       "end": start + step * (i + 1.5), "confidence": confidence, "punctuated_word": w}
                      for i, w in enumerate(words)],
        }]},
        "metadata": {"request_id": str(uuid.uuid4()),
                     "model_info": {"name": "2-general-nova", "version": "2024-01-09.29447", "arch": "nova-3"},
                     "model_uuid": str(uuid.uuid4())},
    }
    if from_finalize:
        message["from_finalize"] = True
    return message
