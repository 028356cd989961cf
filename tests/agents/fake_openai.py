"""A loopback server speaking the OpenAI chat-completions streaming protocol, scripted per test.

Each POST /v1/chat/completions takes the next scripted `Reply` (or `Fail`) and answers it the way the
real service does: `text/event-stream` of `data: {chat.completion.chunk}` lines — a role chunk, content
deltas, `tool_calls` deltas (index, id, type and name first, then the JSON arguments in pieces), a chunk
with `finish_reason`, a usage chunk with empty `choices` when `stream_options.include_usage` is set — and
`data: [DONE]`; or an error status with the service's `{"error": {...}}` body. Requests are recorded.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.support.loopback_http import serve_on_loopback


@dataclass
class Reply:
    text: list[str] = field(default_factory=list)  # content deltas, in order
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (name, arguments)
    finish_reason: str | None = None  # default: tool_calls if any, else stop
    usage: tuple[int, int] = (12, 7)  # prompt, completion tokens
    first_delay: float = 0.0  # before the first chunk (time to first token)
    delay: float = 0.0  # between chunks
    arg_piece: int = 5  # characters per streamed arguments piece
    cut_after: int | None = None  # drop the connection after this many chunks
    error_event: bool = False  # end with an in-stream error event


@dataclass
class Fail:
    status: int
    message: str = "failure"
    type: str = "server_error"
    headers: dict[str, str] = field(default_factory=dict)


class FakeOpenAI:
    def __init__(self) -> None:
        self.script: list[Reply | Fail] = []
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def start(self) -> FakeOpenAI:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._completions)
        self._runner, port = await serve_on_loopback(app)
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        step = self.script.pop(0) if self.script else Reply(["(no script)"])
        if isinstance(step, Fail):
            return web.json_response(
                {"error": {"message": step.message, "type": step.type, "param": None, "code": None}},
                status=step.status, headers=step.headers)
        assert body.get("stream") is True, "the engine must stream"
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        cid, created, model = "chatcmpl-fake", int(time.time()), body["model"]

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
            return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                    "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}], **extra}

        chunks: list[dict[str, Any]] = [chunk({"role": "assistant", "content": ""})]
        chunks += [chunk({"content": t}) for t in step.text]
        for i, (name, args) in enumerate(step.tool_calls):
            raw = json.dumps(args)
            chunks.append(chunk({"tool_calls": [{"index": i, "id": f"call_{i}_{name}", "type": "function",
                                                 "function": {"name": name, "arguments": ""}}]}))
            for k in range(0, len(raw), step.arg_piece):
                chunks.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": raw[k : k + step.arg_piece]}}]}))
        finish = step.finish_reason or ("tool_calls" if step.tool_calls else "stop")
        chunks.append(chunk({}, finish))
        if (body.get("stream_options") or {}).get("include_usage"):
            p, c = step.usage
            chunks.append({"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                           "choices": [], "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}})
        await asyncio.sleep(step.first_delay)
        for n, c in enumerate(chunks):
            if step.cut_after is not None and n >= step.cut_after:
                request.transport.close()  # type: ignore[union-attr]
                return resp
            if step.error_event and n == len(chunks) - 1:
                await resp.write(b'data: {"error": {"message": "overloaded", "type": "server_error"}}\n\n')
                return resp
            await resp.write(f"data: {json.dumps(c)}\n\n".encode())
            if step.delay:
                await asyncio.sleep(step.delay)
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp
