"""A loopback server speaking ElevenLabs' text-to-speech streaming endpoint, scripted per test.

`POST /v1/text-to-speech/{voice_id}/stream?output_format=pcm_16000` with the `xi-api-key` header and a
JSON body (`text`, `model_id`, `voice_settings` {stability, similarity_boost, speed, ...}) answers a
chunked stream of raw signed 16-bit little-endian mono PCM at the rate the format names (here a sine tone
whose frequency the test picks). Unknown voices answer 404, a bad key 401, invalid settings 422, each
with ElevenLabs' `{"detail": {"status": ..., "message": ...}}` (422: a validation list). Scripted
failures: any status, or a connection dropped in the middle of the audio.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import numpy as np
from aiohttp import web

from tests.support.loopback_http import serve_on_loopback

VOICES = {"21m00Tcm4TlvDq8ikWAM", "pNInz6obpgDQGcFmaJgB"}
PCM_RATES = {8000, 16000, 22050, 24000, 44100, 48000}


@dataclass
class Tone:
    freq: float = 440.0
    seconds: float = 0.5
    chunk: int = 3200
    cut_after: int | None = None  # bytes, then the connection is dropped


@dataclass
class Fail:
    status: int
    status_code: str = "server_error"
    message: str = "failure"


@dataclass
class Request:
    voice_id: str
    query: dict[str, str]
    body: dict[str, Any]
    headers: dict[str, str]


class FakeElevenLabs:
    def __init__(self, key: str = "el-test-key") -> None:
        self.key = key
        self.script: list[Tone | Fail] = []
        self.requests: list[Request] = []
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def start(self) -> FakeElevenLabs:
        app = web.Application()
        app.router.add_post("/v1/text-to-speech/{voice_id}/stream", self._stream)
        self._runner, port = await serve_on_loopback(app)
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        voice_id = request.match_info["voice_id"]
        body = await request.json()
        self.requests.append(Request(voice_id, dict(request.query), body, dict(request.headers)))
        if request.headers.get("xi-api-key") != self.key:
            return _detail(401, "invalid_api_key", "Invalid API key")
        step = self.script.pop(0) if self.script else Tone()
        if isinstance(step, Fail):
            return _detail(step.status, step.status_code, step.message)
        if voice_id not in VOICES:
            return _detail(404, "voice_not_found", f"A voice with the voice_id {voice_id} was not found.")
        if not body.get("text"):
            return _validation("text", "Field required")
        settings = body.get("voice_settings") or {}
        for name in ("stability", "similarity_boost"):
            if name in settings and settings[name] is not None and not 0 <= settings[name] <= 1:
                return _validation(f"voice_settings.{name}", "must be between 0 and 1")
        if settings.get("speed") is not None and not 0.7 <= settings["speed"] <= 1.2:
            return _validation("voice_settings.speed", "must be between 0.7 and 1.2")
        fmt = request.query.get("output_format", "mp3_44100_128")
        codec, _, rate_text = fmt.partition("_")
        if codec != "pcm" or int(rate_text) not in PCM_RATES:
            return _detail(400, "invalid_output_format", f"this fake only streams pcm, not {fmt}")
        rate = int(rate_text)
        n = int(step.seconds * rate)
        audio = (8000 * np.sin(2 * np.pi * step.freq * np.arange(n) / rate)).astype("<i2").tobytes()
        resp = web.StreamResponse(headers={"Content-Type": "audio/pcm", "request-id": "req-fake"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(0, len(audio), step.chunk):
            if step.cut_after is not None and i >= step.cut_after:
                request.transport.close()  # type: ignore[union-attr]
                return resp
            await resp.write(audio[i : i + step.chunk])
            await asyncio.sleep(0)
        await resp.write_eof()
        return resp


def _detail(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"detail": {"status": code, "message": message}}, status=status)


def _validation(field: str, message: str) -> web.Response:
    return web.json_response({"detail": [{"loc": ["body", *field.split(".")], "msg": message,
                                          "type": "value_error"}]}, status=422)
