"""A call's recording (stereo WAV: caller left, agent right) and its metrics."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp import web

from api import errors
from api.keys import POOL
from api.models.calls import CallMetrics
from api.routing import Ctx, Result
from store import calls as call_store

from . import registry
from .calls import load_call

_WAV = {"content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}}}


def _path(record: dict[str, Any]) -> Path:
    path = record["recording_path"]
    if not path or not Path(path).is_file():
        raise errors.NotFound("This call has no recording.")
    return Path(path)


@registry.route("GET", "/calls/{call_id}/recording", summary="The call's recording (WAV; Range supported)",
                tag="Calls", errors=(404,), raw_response=_WAV)
async def get_recording(ctx: Ctx) -> web.StreamResponse:
    path = _path(await load_call(ctx))
    return web.FileResponse(path, headers={"Content-Type": "audio/wav",
                                           "Content-Disposition": f'inline; filename="{path.name}"'})


@registry.route("GET", "/calls/{call_id}/recording/stream", summary="Stream the recording, also while the call "
                "is going", tag="Calls", errors=(404,), raw_response=_WAV)
async def stream_recording(ctx: Ctx) -> web.StreamResponse:
    """Sends the file as it grows (the recorder appends about once a second) until the call has ended
    and everything written has been sent."""
    record = await load_call(ctx)
    path = _path(record)
    response = web.StreamResponse(headers={"Content-Type": "audio/wav", "Cache-Control": "no-store"})
    await response.prepare(ctx.request)
    loop = asyncio.get_running_loop()
    with await loop.run_in_executor(None, path.open, "rb") as fh:
        ended = record["status"] in call_store.ENDED
        while True:
            chunk = await loop.run_in_executor(None, fh.read, 64 * 1024)
            if chunk:
                await response.write(chunk)
                continue
            if ended:
                break
            await asyncio.sleep(0.25)
            current = await call_store.calls.get(ctx.app[POOL], ctx.org_id, record["id"])
            ended = current is None or current["status"] in call_store.ENDED
            if ended:
                await asyncio.sleep(1.5)  # the recorder's last block lands just after the call ends
    await response.write_eof()
    return response


@registry.route("GET", "/calls/{call_id}/metrics", summary="Latency, conversation and RTP metrics of a call",
                tag="Calls", response=CallMetrics, errors=(404,))
async def get_metrics(ctx: Ctx) -> Result:
    record = await load_call(ctx)
    m = record["metrics"] or {}
    seconds = None
    if record["answered_at"] is not None and record["ended_at"] is not None:
        seconds = round((record["ended_at"] - record["answered_at"]).total_seconds(), 3)
    empty = {"p50": None, "p90": None}
    data = {
        "duration_seconds": m.get("duration_seconds", seconds),
        "turns": m.get("turns", 0),
        "interruptions": m.get("interruptions", 0),
        "agent_handoffs": m.get("agent_handoffs", 0),
        "total_tokens": m.get("total_tokens", 0),
        "stt_latency_ms": m.get("stt_latency_ms", empty),
        "llm_latency_ms": m.get("llm_latency_ms", empty),
        "tts_latency_ms": m.get("tts_latency_ms", empty),
        "voice_to_voice_ms": m.get("voice_to_voice_ms", empty),
        "retrieval_ms": m.get("retrieval_ms", empty),
        "per_turn": m.get("per_turn", []),
        "packets_lost": m.get("packets_lost"),
        "jitter_ms": m.get("jitter_ms"),
    }
    return Result(CallMetrics.model_validate(data).model_dump(mode="json"))
