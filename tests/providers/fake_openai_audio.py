"""A loopback server speaking OpenAI's audio endpoints, scripted per test (Groq serves the same protocol).

`POST /v1/audio/transcriptions` (multipart/form-data: `file`, `model`, optional `language`, `prompt`,
`response_format`) answers `{"text": ...}` for `json` (plain text for `text`); the uploaded file is parsed
as WAV and kept, so tests can check the format (16 kHz mono 16-bit) and the samples.
`POST /v1/audio/speech` (JSON: `model`, `voice`, `input`, `response_format`, `speed`) streams raw audio
for `response_format: "pcm"`: 24 kHz signed 16-bit little-endian mono, chunked, here a sine tone whose
frequency the test picks. Errors come as the service sends them: a status with
`{"error": {"message", "type", "param", "code"}}`. `Cut` drops the connection in the middle of the audio.
Every request must carry `Authorization: Bearer <key>`.
"""

from __future__ import annotations

import asyncio
import io
import json
import wave
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from aiohttp import web

from tests.support.loopback_http import serve_on_loopback

PCM_RATE = 24000


@dataclass
class Text:
    text: str
    delay: float = 0.0


@dataclass
class Tone:
    freq: float = 440.0
    seconds: float = 0.5
    chunk: int = 4800  # bytes per write
    cut_after: int | None = None  # bytes, then the connection is dropped
    first_delay: float = 0.0


@dataclass
class Fail:
    status: int
    message: str = "failure"
    type: str = "server_error"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Upload:
    fields: dict[str, str]
    rate: int
    channels: int
    width: int
    pcm: np.ndarray
    filename: str
    content_type: str


class FakeOpenAIAudio:
    def __init__(self, key: str = "sk-test") -> None:
        self.key = key
        self.script: list[Text | Tone | Fail] = []
        self.uploads: list[Upload] = []
        self.speech: list[dict[str, Any]] = []
        self.requests = 0
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def start(self) -> FakeOpenAIAudio:
        app = web.Application(client_max_size=26 * 1024 * 1024)
        app.router.add_post("/v1/audio/transcriptions", self._transcriptions)
        app.router.add_post("/v1/audio/speech", self._speech)
        self._runner, port = await serve_on_loopback(app)
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    def _auth(self, request: web.Request) -> web.Response | None:
        self.requests += 1
        if request.headers.get("Authorization") != f"Bearer {self.key}":
            return _error(Fail(401, "Incorrect API key provided.", "invalid_request_error"))
        return None

    async def _transcriptions(self, request: web.Request) -> web.StreamResponse:
        if (denied := self._auth(request)) is not None:
            return denied
        if not request.content_type.startswith("multipart/form-data"):
            return _error(Fail(400, "Expected multipart/form-data", "invalid_request_error"))
        form = await request.post()
        upload = form.get("file")
        if not isinstance(upload, web.FileField):
            return _error(Fail(400, "file is required", "invalid_request_error"))
        data = upload.file.read()
        try:
            with wave.open(io.BytesIO(data)) as w:
                rate, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
                pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2").copy()
        except (wave.Error, EOFError):
            return _error(Fail(400, "Invalid file format.", "invalid_request_error"))
        fields = {k: str(v) for k, v in form.items() if k != "file"}
        self.uploads.append(Upload(fields, rate, channels, width, pcm, upload.filename, upload.content_type))
        step = self.script.pop(0) if self.script else Text("")
        if isinstance(step, Fail):
            return _error(step)
        assert isinstance(step, Text)
        if step.delay:
            await asyncio.sleep(step.delay)
        if fields.get("response_format") == "text":
            return web.Response(text=step.text + "\n")
        return web.json_response({"text": step.text, "usage": {"type": "duration", "seconds": len(pcm) // rate}})

    async def _speech(self, request: web.Request) -> web.StreamResponse:
        if (denied := self._auth(request)) is not None:
            return denied
        body = await request.json()
        self.speech.append(body)
        step = self.script.pop(0) if self.script else Tone()
        if isinstance(step, Fail):
            return _error(step)
        assert isinstance(step, Tone)
        for name in ("model", "voice", "input"):
            if not body.get(name):
                return _error(Fail(400, f"'{name}' is a required property", "invalid_request_error"))
        if body.get("response_format") != "pcm":
            return _error(Fail(400, "this fake only speaks pcm", "invalid_request_error"))
        n = int(step.seconds * PCM_RATE)
        audio = (8000 * np.sin(2 * np.pi * step.freq * np.arange(n) / PCM_RATE)).astype("<i2").tobytes()
        resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        await asyncio.sleep(step.first_delay)
        for i in range(0, len(audio), step.chunk):
            if step.cut_after is not None and i >= step.cut_after:
                request.transport.close()  # type: ignore[union-attr]
                return resp
            await resp.write(audio[i : i + step.chunk])
            await asyncio.sleep(0)
        await resp.write_eof()
        return resp


def _error(step: Fail) -> web.Response:
    return web.Response(status=step.status, headers=step.headers, content_type="application/json",
                        text=json.dumps({"error": {"message": step.message, "type": step.type, "param": None,
                                                   "code": None}}))
