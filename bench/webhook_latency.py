"""Webhook delivery latency (event committed → receiver got it) with N calls ending together.

Input: N call rows of one organization whose agent has a ``webhook_url`` on a loopback receiver (a
separate process, answering 200 at once); ONE transaction commits, for every call, the two events a call
end writes (``call_status`` → completed, ``call_completed``). The real platform service (LISTEN,
dispatcher, deliverer, analyzer; one worker, default policy: 64 concurrent deliveries) sends them; the
analyzer then makes each call's local report and its ``call_analyzed`` webhook. Latency = receiver's
arrival time − commit time (same host clock).

    python -m bench.webhook_latency [--calls 100] [--dsn postgresql://…]   (default: embedded PostgreSQL)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

RECEIVER = r'''
import json, sys, time
from aiohttp import web
out = open(sys.argv[1], "a", buffering=1)
async def hook(request):
    body = await request.read()
    out.write(json.dumps({"t": time.time(), "event": request.headers.get("X-Switchboard-Event"),
                          "id": json.loads(body)["event_id"]}) + "\n")
    return web.Response(text="ok")
app = web.Application()
app.router.add_post("/hook", hook)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[2]), print=lambda *a: print("ready", flush=True),
            access_log=None)
'''


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


async def main(calls: int, dsn: str | None) -> None:
    import asyncpg

    from store import calls as call_store
    from store import orgs, outbox
    from store.db import create_pool, embedded_database_url
    from store.migrate import migrate
    from switchboard.platform.service import PlatformConfig, PlatformService

    admin = None
    if dsn is None:
        admin = embedded_database_url(Path("/tmp/sbbench-wh"))
        name = f"bench_{uuid.uuid4().hex[:8]}"
        conn = await asyncpg.connect(admin)
        await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.close()
        dsn = admin.rsplit("/", 1)[0] + f"/{name}" if "?" not in admin else admin.replace("/postgres?", f"/{name}?")
    pool = await create_pool(dsn, min_size=2, max_size=10)
    async with pool.acquire() as conn:
        await migrate(conn)
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = Path(tempfile.mkdtemp()) / "arrivals.jsonl"
    receiver = await asyncio.create_subprocess_exec(sys.executable, "-c", RECEIVER, str(log), str(port),
                                                    stdout=asyncio.subprocess.PIPE)
    assert receiver.stdout is not None
    await asyncio.wait_for(receiver.stdout.readline(), 20)
    org, _ = await orgs.get_or_create_org(pool, f"bench-{uuid.uuid4().hex[:6]}")
    agent_id = await pool.fetchval("INSERT INTO agents (org_id, name, config) VALUES ($1, 'bench', $2) RETURNING id",
                                   org["id"], {"webhook_url": f"http://127.0.0.1:{port}/hook"})
    rows = await call_store.create_many(pool, org["id"], [
        {"direction": "outbound", "status": "completed", "to_number": f"sip:c{i}@127.0.0.1", "agent_id": agent_id,
         "agent_config": {"webhook_url": f"http://127.0.0.1:{port}/hook"}} for i in range(calls)])
    service = PlatformService(pool, PlatformConfig(dsn=dsn, worker="bench", base_url="http://127.0.0.1:8080",
                                                   allow_private_urls=True))
    await service.start()
    await asyncio.sleep(1.0)  # listener connected, loops idle
    try:
        async with pool.acquire() as conn, conn.transaction():
            for call in rows:
                await outbox.append(conn, org["id"], call["id"], "call_status", {
                    "call_id": str(call["id"]), "status": "completed", "previous_status": "in_progress",
                    "hangup_cause": "NORMAL_CLEARING", "disconnection_reason": "user_hangup"})
                await outbox.append(conn, org["id"], call["id"], "call_completed", {"call_id": str(call["id"])})
        committed = time.time()
        deadline = committed + 120
        while time.time() < deadline:
            lines = log.read_text().splitlines() if log.exists() else []
            if len(lines) >= 3 * calls:
                break
            await asyncio.sleep(0.1)
    finally:
        await service.stop()
        receiver.terminate()
        await receiver.wait()
    arrivals = [json.loads(line) for line in log.read_text().splitlines()]
    by_event: dict[str, list[float]] = {}
    for a in arrivals:
        by_event.setdefault(a["event"], []).append((a["t"] - committed) * 1000)
    ends = by_event.get("call_status", []) + by_event.get("call_completed", [])
    print(f"{calls} calls ending together: {len(ends)} end deliveries (call_status + call_completed) in one commit")
    print(f"  first arrival {min(ends):.0f} ms after commit")
    print(f"  event → receiver: p50 {pct(ends, 50):.0f} ms, p99 {pct(ends, 99):.0f} ms, max {max(ends):.0f} ms, "
          f"mean {statistics.mean(ends):.0f} ms")
    analyzed = by_event.get("call_analyzed", [])
    if analyzed:
        print(f"  call_analyzed ({len(analyzed)}; local report, then its own outbox event): "
              f"p50 {pct(analyzed, 50):.0f} ms, p99 {pct(analyzed, 99):.0f} ms")
    failures = await pool.fetchval("SELECT count(*) FROM webhook_attempts WHERE status_code IS DISTINCT FROM 200")
    print(f"  failed attempts: {failures}; duplicates: {len(arrivals) - len({a['id'] for a in arrivals})}")
    await pool.close()
    if admin is not None:  # the database this run created
        conn = await asyncpg.connect(admin)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--dsn", default=os.environ.get("DATABASE_URL"))
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.dsn))
