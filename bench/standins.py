"""Cloud-provider stand-ins for the benchmarks, in a process of their own (their CPU is not the worker's).

    python -m bench.standins [--port 0] [--stt-final-ms 150] [--llm-first-ms 300] [--tts-first-ms 100]

One loopback HTTP server speaking three documented protocols, with fixed, stated delays:
- Deepgram live streaming STT (`GET /v1/listen`, websocket; header `Authorization: Token …`): binary
  16-bit 16 kHz audio in; like Deepgram's own endpointing, a final `Results` (`is_final`, `speech_final`)
  goes out ``stt-final-ms`` after the voiced audio ends (the last block above a speech energy, as it
  arrives); a `Finalize` is answered (`from_finalize`) at once, or when that delay is up if voiced audio
  is still unfinalised; `CloseStream` gets `Metadata` and a close. The transcript is what the caller said
  when the caller tells it (`POST /script` {"text"} as it starts speaking a phrase: a recogniser that makes no
  mistakes; a final carries the phrases told before its last voiced audio arrived), else a fixed sentence.
- OpenAI chat completions (`POST /v1/chat/completions`, streamed): the first token ``llm-first-ms`` after
  the request, the rest 10 ms apart; the first sentence ends at once ("Sure!").
- ElevenLabs streaming TTS (`POST /v1/text-to-speech/{voice}/stream?output_format=pcm_16000`): the first
  audio ``tts-first-ms`` after the request, then a voiced tone (0.06 s per character), streamed ahead of
  real time in 100 ms chunks.
It prints ``READY <port>`` on stdout once it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from typing import Any

import numpy as np
from aiohttp import ClientConnectionResetError, WSMsgType, web

TRANSCRIPT = "I would like to know what Switchboard does"
REPLY = ["Sure!", " Switchboard", " answers", " your", " calls."]
VOICED_RMS = 400.0


def _results(text: str, start_byte: int, length: int, bytes_per_second: int, *,
             from_finalize: bool) -> dict[str, Any]:
    start, duration = start_byte / bytes_per_second, length / bytes_per_second
    words = text.split()
    step = duration / (len(words) + 1) if words else 0.0
    msg: dict[str, Any] = {
        "type": "Results", "channel_index": [0, 1], "duration": duration, "start": start,
        "is_final": True, "speech_final": True,
        "channel": {"alternatives": [{
            "transcript": text, "confidence": 0.95,
            "words": [{"word": w.lower(), "start": start + step * (i + 0.5), "end": start + step * (i + 1.5),
                       "confidence": 0.95, "punctuated_word": w} for i, w in enumerate(words)]}]},
        "metadata": {"request_id": str(uuid.uuid4()), "model_info": {"name": "stand-in", "version": "1",
                                                                      "arch": "stand-in"},
                     "model_uuid": str(uuid.uuid4())},
    }
    if from_finalize:
        msg["from_finalize"] = True
    return msg


class StandIns:
    def __init__(self, stt_final_ms: float, llm_first_ms: float, tts_first_ms: float) -> None:
        self.stt_final = stt_final_ms / 1000.0
        self.llm_first = llm_first_ms / 1000.0
        self.tts_first = tts_first_ms / 1000.0
        self.counts = {"stt_connections": 0, "stt_finals": 0, "llm_requests": 0, "tts_requests": 0}
        self.script: list[tuple[float, str]] = []  # (told at, phrase): what a caller is saying, in order

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/listen", self.listen)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/text-to-speech/{voice_id}/stream", self.tts)
        app.router.add_get("/counts", self.get_counts)
        app.router.add_post("/script", self.post_script)
        return app

    async def get_counts(self, request: web.Request) -> web.Response:
        return web.json_response(self.counts)

    async def post_script(self, request: web.Request) -> web.Response:
        self.script.append((time.monotonic(), str((await request.json())["text"])))
        return web.json_response({"queued": len(self.script)})

    def _said(self, before: float) -> str:
        """The phrases the caller told of before `before` (the last voiced audio's arrival), taken."""
        said = [text for at, text in self.script if at <= before]
        del self.script[: len(said)]
        return " ".join(said) if said else TRANSCRIPT

    # -- Deepgram ------------------------------------------------------------------------------------------
    async def listen(self, request: web.Request) -> web.StreamResponse:
        self.counts["stt_connections"] += 1
        bps = 2 * int(request.query.get("sample_rate", "16000"))  # linear16 mono
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        st = {"received": 0, "final_to": 0, "voiced_pending": False, "last_voiced": 0.0}
        lock = asyncio.Lock()
        timer: asyncio.Task[None] | None = None

        async def finalize(from_finalize: bool) -> None:
            async with lock:
                text = self._said(st["last_voiced"]) if st["voiced_pending"] else ""
                start, length = st["final_to"], st["received"] - st["final_to"]
                st["final_to"], st["voiced_pending"] = st["received"], False
                if text:
                    self.counts["stt_finals"] += 1
                if not ws.closed:
                    await ws.send_json(_results(text, start, length, bps, from_finalize=from_finalize))

        async def endpoint_after(delay: float) -> None:
            await asyncio.sleep(delay)
            await finalize(False)

        try:
            async for msg in ws:
                if msg.type == WSMsgType.BINARY:
                    st["received"] += len(msg.data)
                    pcm = np.frombuffer(msg.data[: len(msg.data) // 2 * 2], "<i2").astype(np.float64)
                    if len(pcm) and float(np.sqrt(np.mean(pcm * pcm))) > VOICED_RMS:
                        st["voiced_pending"], st["last_voiced"] = True, time.monotonic()
                        if timer is not None:
                            timer.cancel()
                        timer = asyncio.ensure_future(endpoint_after(self.stt_final))
                elif msg.type == WSMsgType.TEXT:
                    kind = json.loads(msg.data).get("type")
                    if kind == "Finalize":
                        if st["voiced_pending"]:
                            wait = st["last_voiced"] + self.stt_final - time.monotonic()
                            if wait > 0:
                                await asyncio.sleep(wait)
                        if timer is not None:
                            timer.cancel()
                            timer = None
                        await finalize(True)
                    elif kind == "CloseStream":
                        await ws.send_json({"type": "Metadata", "transaction_key": "deprecated",
                                            "request_id": str(uuid.uuid4()), "sha256": "0" * 64,
                                            "created": "2025-01-01T00:00:00.000Z",
                                            "duration": st["received"] / bps, "channels": 1})
                        await ws.close()
                        break
        finally:
            if timer is not None:
                timer.cancel()
        return ws

    # -- OpenAI chat ---------------------------------------------------------------------------------------
    async def chat(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._chat(request)
        except ClientConnectionResetError:  # the client went away (a speculative reply thrown away): normal
            return web.Response(status=499)

    async def tts(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._tts(request)
        except ClientConnectionResetError:  # the client went away (barge-in, a discarded reply): normal
            return web.Response(status=499)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        self.counts["llm_requests"] += 1
        t0 = time.monotonic()
        body = await request.json()
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        created, model = int(time.time()), body.get("model", "stand-in")

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            c = {"id": "chatcmpl-standin", "object": "chat.completion.chunk", "created": created, "model": model,
                 "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
            return f"data: {json.dumps(c)}\n\n".encode()

        await asyncio.sleep(max(0.0, t0 + self.llm_first - time.monotonic()))
        await resp.write(chunk({"role": "assistant", "content": ""}))
        for i, token in enumerate(REPLY):
            if i:
                await asyncio.sleep(0.010)
            await resp.write(chunk({"content": token}))
        await resp.write(chunk({}, "stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = {"id": "chatcmpl-standin", "object": "chat.completion.chunk", "created": created, "model": model,
                     "choices": [], "usage": {"prompt_tokens": 20, "completion_tokens": len(REPLY),
                                              "total_tokens": 20 + len(REPLY)}}
            await resp.write(f"data: {json.dumps(usage)}\n\n".encode())
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    # -- ElevenLabs ----------------------------------------------------------------------------------------
    async def _tts(self, request: web.Request) -> web.StreamResponse:
        self.counts["tts_requests"] += 1
        t0 = time.monotonic()
        body = await request.json()
        rate = int(request.query.get("output_format", "pcm_16000").partition("_")[2] or 16000)
        n = int(max(0.3, 0.06 * len(body.get("text") or "")) * rate)
        t = np.arange(n) / rate
        audio = (7000 * np.sin(2 * np.pi * 220 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype("<i2")
        data = audio.tobytes()
        resp = web.StreamResponse(headers={"Content-Type": "audio/pcm", "request-id": "req-standin"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        await asyncio.sleep(max(0.0, t0 + self.tts_first - time.monotonic()))
        step = rate // 10 * 2
        for i in range(0, len(data), step):
            await resp.write(data[i : i + step])
            await asyncio.sleep(0.02)
        await resp.write_eof()
        return resp


async def serve(args: argparse.Namespace) -> None:
    standins = StandIns(args.stt_final_ms, args.llm_first_ms, args.tts_first_ms)
    runner = web.AppRunner(standins.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", args.port)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"READY {port}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--stt-final-ms", type=float, default=150.0)
    ap.add_argument("--llm-first-ms", type=float, default=300.0)
    ap.add_argument("--tts-first-ms", type=float, default=100.0)
    args = ap.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()


class StandInProcess:
    """The stand-ins in a child process: `port`, `pid`, `cpu_seconds()`, `stop()`."""

    def __init__(self, *, stt_final_ms: float = 150.0, llm_first_ms: float = 300.0,
                 tts_first_ms: float = 100.0) -> None:
        import subprocess
        import sys

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.standins", "--stt-final-ms", str(stt_final_ms), "--llm-first-ms",
             str(llm_first_ms), "--tts-first-ms", str(tts_first_ms)],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        if len(line) != 2 or line[0] != "READY":
            self.stop()
            raise RuntimeError(f"stand-ins did not start: {line}")
        self.port = int(line[1])
        self.pid = self.proc.pid
        self.base_url = f"http://127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float:
        import psutil

        try:
            t = psutil.Process(self.pid).cpu_times()
            return t.user + t.system
        except psutil.Error:
            return 0.0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except Exception:
                self.proc.kill()
                self.proc.wait()
