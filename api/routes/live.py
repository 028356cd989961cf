"""Live transcripts: ``GET /calls/{id}/live`` hands out a 5-minute session token and the socket URL; the
socket (``?session_token=`` or ``?api_key=``) sends ``connected`` (status and transcript so far), then
``transcript_update`` (partial and final turns), ``call_status_update`` and ``call_event`` (DTMF,
transfers, tool calls, provider fallbacks…) as they are committed on any worker, answers
``{"type": "ping"}`` with ``{"type": "pong"}``, and closes when the call ends.

Also ``GET /calls/{id}/report``, the post-call report.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

from aiohttp import WSMsgType, web

from api import errors
from api.envelope import dumps
from api.keys import POOL, SETTINGS
from api.live_tokens import TOKEN_TTL_SECONDS, TokenSigner
from api.models.webhooks import LiveOut, ReportOut
from api.routing import Ctx, Result
from store import calls as call_store
from store import orgs

from . import registry
from .calls import load_call

ENDED = frozenset(call_store.ENDED)
SOCKET_PATH = "/api/v1/calls/{call_id}/live/ws"


class Subscription(Protocol):
    call_id: UUID
    queue: asyncio.Queue[dict[str, Any] | None]
    seen: set[int]


class Hub(Protocol):
    def subscribe(self, call_id: UUID) -> Subscription: ...
    def unsubscribe(self, sub: Any) -> None: ...


LIVE_HUB: web.AppKey[Hub] = web.AppKey("live_hub")
LIVE_TOKENS = web.AppKey("live_tokens", TokenSigner)


def _ws_base(base_url: str) -> str:
    return "wss://" + base_url[8:] if base_url.startswith("https://") else "ws://" + base_url.removeprefix("http://")


@registry.route("GET", "/calls/{call_id}/live", summary="A websocket URL and session token for the live transcript",
                tag="Calls", response=LiveOut, errors=(404,))
async def get_live(ctx: Ctx) -> Result:
    record = await load_call(ctx)
    token, expires = ctx.app[LIVE_TOKENS].issue(record["id"], ctx.org_id)
    url = _ws_base(ctx.app[SETTINGS].base_url) + SOCKET_PATH.format(call_id=record["id"])
    return Result(LiveOut.model_validate({
        "call_id": record["id"], "websocket_url": url, "session_token": token,
        "expires_at": datetime.fromtimestamp(expires, UTC),
        "connection_info": {"url": url, "auth_method": "query_param", "query_param": "session_token",
                            "expires_in": TOKEN_TTL_SECONDS,
                            "message_types": ["connected", "transcript_update", "call_status_update", "call_event",
                                              "error", "pong"]},
    }).model_dump(mode="json"))


@registry.route("GET", "/calls/{call_id}/report", summary="The post-call report (summary, analysis, metrics)",
                tag="Calls", response=ReportOut, errors=(404, 409))
async def get_report(ctx: Ctx) -> Result:
    record = await load_call(ctx)
    found = await ctx.app[POOL].fetchrow("SELECT status, report FROM call_reports WHERE call_id = $1", record["id"])
    if found is not None:
        return Result(ReportOut(call_id=record["id"], status=found["status"], report=found["report"])
                      .model_dump(mode="json"))
    if record["status"] not in ENDED:
        raise errors.Conflict(f"The call is {record['status']}; its report is made when it ends.")
    # its end event is still on its way to the analyzer, or the call ended before reports existed:
    # queue it (the analyzer of any worker takes it) and answer "pending"
    await ctx.app[POOL].execute("INSERT INTO call_reports (call_id, org_id) VALUES ($1, $2)"
                                " ON CONFLICT (call_id) DO NOTHING", record["id"], ctx.org_id)
    return Result(ReportOut(call_id=record["id"], status="pending", report=None).model_dump(mode="json"))


# -- the socket -----------------------------------------------------------------------------------------
async def _authorise(request: web.Request, call_id: UUID) -> UUID:
    token = request.query.get("session_token")
    if token:
        claims = request.app[LIVE_TOKENS].check(token)
        if claims is None or claims[0] != call_id:
            raise errors.Unauthorized("The session token is invalid, expired, or for another call.")
        return claims[1]
    key = request.query.get("api_key") or request.headers.get("X-API-Key")
    if not key and request.headers.get("Authorization", "")[:7].lower() == "bearer ":
        key = request.headers["Authorization"][7:].strip()
    if not key:
        raise errors.Unauthorized("Give ?session_token= (from GET /calls/{id}/live) or ?api_key=.")
    record = await orgs.authenticate(request.app[POOL], key)
    if record is None:
        raise errors.Unauthorized("Invalid API key.")
    return record["org_id"]


def _turn(payload: dict[str, Any], at: str) -> dict[str, Any]:
    return {k: payload.get(k) for k in ("role", "content", "start_ms", "end_ms", "interrupted", "agent_name")} | {
        "timestamp": payload.get("at") or at}


class LiveSocket:
    def __init__(self, ws: web.WebSocketResponse, call_id: UUID) -> None:
        self.ws = ws
        self.call_id = call_id
        self.transcript: list[dict[str, Any]] = []

    async def send(self, kind: str, data: dict[str, Any], event_id: int | None = None) -> None:
        message: dict[str, Any] = {"type": kind, "call_id": str(self.call_id), "data": data}
        if event_id is not None:
            message["event_id"] = event_id
        await self.ws.send_str(dumps(message))

    async def forward(self, event: dict[str, Any]) -> bool:
        """Send one outbox event; True when it ended the call."""
        name, payload = event["event"], event["payload"] if isinstance(event["payload"], dict) else {}
        at = event["created_at"].isoformat().replace("+00:00", "Z")
        if name in ("transcript_turn", "transcript_partial"):
            final = name == "transcript_turn"
            turn = _turn(payload, at)
            if final:
                self.transcript.append(turn)
            await self.send("transcript_update", {"final": final, "turn": turn, "transcript": self.transcript},
                            event["id"])
            return False
        if name == "call_status":
            data = {k: v for k, v in payload.items() if k != "call"}
            await self.send("call_status_update", data, event["id"])
            return payload.get("status") in ENDED
        await self.send("call_event", {"event": name, "at": at, **{k: v for k, v in payload.items() if k != "call"}},
                        event["id"])
        return False


async def live_socket(request: web.Request) -> web.StreamResponse:
    try:
        call_id = UUID(request.match_info["call_id"])
    except ValueError as exc:
        raise errors.NotFound("No call with that id.") from exc
    org_id = await _authorise(request, call_id)
    pool = request.app[POOL]
    hub = request.app[LIVE_HUB]
    sub = hub.subscribe(call_id)  # before the snapshot: nothing committed after it is missed
    try:
        async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            call = await call_store.calls.get(conn, org_id, call_id)
            if call is None:
                raise errors.NotFound("No call with that id.")
            turns = await call_store.transcript(conn, call_id)
            sub.seen.update(r["id"] for r in await conn.fetch("SELECT id FROM outbox WHERE call_id = $1", call_id))
        ws = web.WebSocketResponse(heartbeat=30)
        await ws.prepare(request)
        live = LiveSocket(ws, call_id)
        live.transcript = [{"role": t["role"], "content": t["content"], "start_ms": t["start_ms"],
                            "end_ms": t["end_ms"], "interrupted": t["interrupted"], "agent_name": t["agent_name"],
                            "timestamp": t["created_at"].isoformat().replace("+00:00", "Z")} for t in turns]
        await live.send("connected", {"status": call["status"], "transcript": live.transcript})
        if call["status"] in ENDED:
            await ws.close(message=b"call ended")
            return ws
        reader = asyncio.ensure_future(_read_client(ws, live))
        try:
            while not ws.closed:
                getter = asyncio.ensure_future(sub.queue.get())
                done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    break  # the client went away
                event = getter.result()
                if event is None:
                    await live.send("error", {"message": "This connection fell too far behind; reconnect."})
                    break
                if await live.forward(event):
                    break
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        await ws.close(message=b"call ended")
        return ws
    finally:
        hub.unsubscribe(sub)


async def _read_client(ws: web.WebSocketResponse, live: LiveSocket) -> None:
    async for msg in ws:
        if msg.type != WSMsgType.TEXT:
            continue
        try:
            kind = json.loads(msg.data).get("type")
        except (ValueError, AttributeError):
            kind = None
        if kind == "ping":
            await ws.send_str(dumps({"type": "pong"}))
        else:
            await live.send("error", {"message": 'Only {"type": "ping"} is understood here.'})
