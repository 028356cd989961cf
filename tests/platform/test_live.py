"""The live transcript socket: a token from one app instance, the socket on another, the call's events
committed on a third connection (as a call on another worker would) — streamed in order, closed at the end."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient

from api.live_tokens import TokenSigner
from store import outbox
from store.db import create_pool
from switchboard.config import Settings
from switchboard.platform.live import publish_partial
from switchboard.server import init_app
from tests.platform.conftest import api, seed


async def _app(aiohttp_client: Any, tmp_path: Path, database_url: str, name: str) -> TestClient:
    settings = Settings(data_dir=tmp_path / name, database_url=database_url, secret_key="shared-secret",
                        api_port=8080, worker_id=name)
    return await aiohttp_client(init_app(settings, database_url, bootstrap=False))


async def _next(ws: Any, within: float = 10.0) -> dict[str, Any]:
    msg = await asyncio.wait_for(ws.receive(), within)
    assert msg.type == WSMsgType.TEXT, msg
    return msg.json()


async def test_live_socket_streams_events_written_elsewhere_and_closes_at_call_end(
        db: asyncpg.Pool, database_url: str, aiohttp_client: Any, tmp_path: Path) -> None:
    first = await _app(aiohttp_client, tmp_path, database_url, "worker-a")
    second = await _app(aiohttp_client, tmp_path, database_url, "worker-b")
    org = await seed(db)
    call = await org.call(db, status="in_progress")
    await db.execute("INSERT INTO transcript_turns (call_id, role, content) VALUES ($1, 'agent', 'Hello there!')",
                     call["id"])
    _, live = await api(second, org.key, "GET", f"/calls/{call['id']}/live", expect=200)
    data = live["data"]
    assert data["websocket_url"].startswith("ws://") and data["websocket_url"].endswith(f"/calls/{call['id']}/live/ws")
    path = data["websocket_url"].split("8080", 1)[1]

    elsewhere = await create_pool(database_url, min_size=1, max_size=1)  # "the worker running the call"
    try:
        ws = await first.ws_connect(f"{path}?session_token={data['session_token']}")
        hello = await _next(ws)
        assert hello["type"] == "connected" and hello["data"]["status"] == "in_progress"
        assert [t["content"] for t in hello["data"]["transcript"]] == ["Hello there!"]
        await ws.send_json({"type": "ping"})
        assert (await _next(ws))["type"] == "pong"

        async def write(event: str, payload: dict[str, Any]) -> None:
            async with elsewhere.acquire() as conn, conn.transaction():
                await outbox.append(conn, org.org_id, call["id"], event, payload)

        await publish_partial(elsewhere, org.org_id, call["id"], "user", "I would like")  # no outbox row
        partial = await _next(ws)  # partials have no outbox row: only the LISTEN path can bring them
        assert partial["type"] == "transcript_update" and partial["data"]["final"] is False
        assert partial["data"]["turn"]["content"] == "I would like" and "event_id" not in partial
        await write("tool_call", {"name": "lookup", "arguments": {}})
        tool = await _next(ws)
        assert tool["type"] == "call_event" and tool["data"]["event"] == "tool_call"
        await write("transcript_turn", {"role": "user", "content": "I would like a table.", "start_ms": 100,
                                        "end_ms": 1500, "interrupted": False})
        final = await _next(ws)
        assert final["data"]["final"] is True
        assert [t["content"] for t in final["data"]["transcript"]] == ["Hello there!", "I would like a table."]
        await write("dtmf_received", {"digits": "5"})
        dtmf = await _next(ws)
        assert dtmf["type"] == "call_event" and dtmf["data"]["event"] == "dtmf_received"
        assert dtmf["data"]["digits"] == "5"
        async with elsewhere.acquire() as conn, conn.transaction():  # the status change and its event together
            await conn.execute("UPDATE calls SET status = 'completed', ended_at = now() WHERE id = $1", call["id"])
            await outbox.append(conn, org.org_id, call["id"], "call_status", {
                "call_id": str(call["id"]), "status": "completed", "previous_status": "in_progress",
                "hangup_cause": "NORMAL_CLEARING"})
        status = await _next(ws)
        assert status["type"] == "call_status_update" and status["data"]["status"] == "completed"
        closing = await asyncio.wait_for(ws.receive(), 10)
        assert closing.type in (WSMsgType.CLOSE, WSMsgType.CLOSED)
        assert [status["event_id"] > dtmf["event_id"] > final["event_id"] > tool["event_id"]] == [True]

        # an ended call: connected (with the whole transcript), then closed at once
        again = await first.ws_connect(f"{path}?api_key={org.key}")
        done = await _next(again)
        assert done["type"] == "connected" and done["data"]["status"] == "completed"
        assert (await asyncio.wait_for(again.receive(), 10)).type in (WSMsgType.CLOSE, WSMsgType.CLOSED)
    finally:
        await elsewhere.close()


async def test_socket_auth(db: asyncpg.Pool, database_url: str, aiohttp_client: Any, tmp_path: Path) -> None:
    app = await _app(aiohttp_client, tmp_path, database_url, "worker-a")
    org, other = await seed(db), await seed(db, "globex")
    call = await org.call(db, status="in_progress")
    another = await org.call(db, status="in_progress")
    _, live = await api(app, org.key, "GET", f"/calls/{call['id']}/live", expect=200)
    token = live["data"]["session_token"]
    base = f"/api/v1/calls/{call['id']}/live/ws"
    for query, status in ((f"?session_token={token}x", 401), ("", 401), ("?api_key=sb_nope", 401),
                          (f"?api_key={other.key}", 404)):
        resp = await app.get(base + query)
        assert resp.status == status, (query, resp.status)
        assert (await resp.json())["error"]["code"] in ("unauthorized", "not_found")
    resp = await app.get(f"/api/v1/calls/{another['id']}/live/ws?session_token={token}")  # another call's token
    assert resp.status == 401
    await api(app, other.key, "GET", f"/calls/{call['id']}/live", expect=404)
    signer = TokenSigner("shared-secret")
    expired, _ = signer.issue(call["id"], org.org_id, ttl=-1)
    assert signer.check(expired) is None
    assert signer.check(signer.issue(call["id"], org.org_id)[0]) == (call["id"], org.org_id)
    assert TokenSigner("another-secret").check(token) is None
    assert (await app.get(f"/api/v1/calls/{uuid.uuid4()}/live/ws?api_key={org.key}")).status == 404
