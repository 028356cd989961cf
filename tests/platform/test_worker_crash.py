"""A worker killed with SIGKILL in the middle of delivering loses nothing: its leases run out and another
worker delivers every pending webhook (and dispatches what was still in the outbox)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from store import outbox
from switchboard.platform.deliverer import DeliveryPolicy
from tests.platform.conftest import Receiver, seed

ROOT = Path(__file__).resolve().parents[2]


async def test_kill_9_mid_delivery_loses_nothing(db, database_url: str, platform, receiver: Receiver) -> None:
    org = await seed(db, agent_config={"webhook_url": receiver.url})
    calls = [await org.call(db) for _ in range(20)]
    receiver.answers = ["hang"] * 20  # the doomed worker's requests are never answered
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "switchboard.platform.worker", "--dsn", database_url, "--worker", "doomed",
        "--allow-private", "--lease", "3", "--timeout", "60",
        env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        async with db.acquire() as conn, conn.transaction():
            for call in calls:
                await outbox.append(conn, org.org_id, call["id"], "call_started", {"call_id": str(call["id"])})
        await receiver.wait_for(lambda r: len(r) >= 20, within=30)  # all twenty are in flight in the worker
        leased = await db.fetchval("SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'"
                                   " AND locked_by = 'doomed' AND locked_until > now()")
        assert leased == 20
        proc.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(proc.wait(), 10) == -signal.SIGKILL
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    receiver.release.set()
    # five more events while no worker runs: they wait in the outbox
    async with db.acquire() as conn, conn.transaction():
        for call in calls[:5]:
            await outbox.append(conn, org.org_id, call["id"], "call_failed", {"call_id": str(call["id"])})

    await platform(worker="rescuer", policy=DeliveryPolicy(timeout_seconds=5, lease_seconds=5,
                                                            first_delay_seconds=0.1))
    # 20 re-sent + 5 call_failed + the 5 post-call reports those failed calls produced
    await receiver.wait_for(lambda r: len(r) >= 50, within=30)
    async with asyncio.timeout(15):
        while await db.fetchval("SELECT count(*) FROM webhook_deliveries WHERE status <> 'delivered'"):  # noqa: ASYNC110
            await asyncio.sleep(0.05)  # the rescuer records the last answers
    rows = await db.fetch("SELECT d.event, d.attempts, array_agg(a.worker) AS workers FROM webhook_deliveries d"
                          " JOIN webhook_attempts a ON a.delivery_id = d.id GROUP BY d.id")
    events = sorted(r["event"] for r in rows)
    assert events == ["call_analyzed"] * 5 + ["call_failed"] * 5 + ["call_started"] * 20
    started = [r for r in rows if r["event"] == "call_started"]
    # claimed once by the doomed worker (no attempt row: it died mid-request), delivered by the rescuer
    assert all(r["attempts"] == 2 and r["workers"] == ["rescuer"] for r in started)
    redelivered = {r.json["event_id"] for r in receiver.received[20:] if r.json["event"] == "call_started"}
    assert redelivered == {r.json["event_id"] for r in receiver.received[:20]}
