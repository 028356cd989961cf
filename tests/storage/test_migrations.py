"""Migrations: numbered, applied once, safe when several workers start at once."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from store.migrate import available, migrate


def test_migration_files_are_numbered_in_order():
    versions = [m.version for m in available()]
    assert versions == sorted(versions) and versions[0] == 1
    assert all(m.sql.strip() for m in available())


async def test_concurrent_workers_apply_each_migration_once(database_url):
    admin = database_url
    name = f"sb_mig_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(admin)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    base, _, query = admin.partition("?")
    dsn = f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")
    try:
        conns = [await asyncpg.connect(dsn) for _ in range(4)]
        results = await asyncio.gather(*(migrate(c) for c in conns))
        applied = sorted(v for r in results for v in r)
        assert applied == [m.version for m in available()]  # each exactly once, across all "workers"
        assert await migrate(conns[0]) == []
        rows = await conns[0].fetch("SELECT version FROM schema_migrations ORDER BY version")
        assert [r["version"] for r in rows] == applied
        for c in conns:
            await c.close()
    finally:
        conn = await asyncpg.connect(admin)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


async def test_orphaned_calls_are_closed_at_start(db):
    from store import calls, orgs

    org, _ = await orgs.get_or_create_org(db, "o")
    async with db.acquire() as conn:
        made = await calls.create_many(conn, org["id"], [
            {"direction": "outbound", "status": "pending", "to_number": "sip:a@b", "worker_id": "w1"},
            {"direction": "outbound", "status": "pending", "to_number": "sip:c@d", "worker_id": "w1"},
            {"direction": "outbound", "status": "pending", "to_number": "+15551234567", "worker_id": "w1"},
            {"direction": "outbound", "status": "pending", "to_number": "sip:e@f", "worker_id": "w2"},
        ])
    await calls.transition(db, made[0]["id"], "ringing", allowed_from=("pending",))
    await calls.transition(db, made[1]["id"], "in_progress", allowed_from=("pending",), answered_at=org["created_at"])
    await calls.transition(db, made[3]["id"], "in_progress", allowed_from=("pending",), answered_at=org["created_at"])
    closed = await calls.close_orphans(db, "w1")
    assert {c["id"] for c in closed} == {made[0]["id"], made[1]["id"]}
    after = {c["id"]: c for c in [await calls.calls.get(db, org["id"], m["id"]) for m in made]}
    assert after[made[0]["id"]]["status"] == "failed" and after[made[1]["id"]]["status"] == "completed"
    assert all(after[m["id"]]["hangup_cause"] == "SYSTEM_SHUTDOWN" for m in made[:2])
    # claimed but never placed: back in the queue for any worker
    assert after[made[2]["id"]]["status"] == "pending" and after[made[2]["id"]]["worker_id"] is None
    assert after[made[3]["id"]]["status"] == "in_progress"  # another worker's live call is left alone
    assert [e["status"] for e in await calls.events(db, made[0]["id"])] == ["pending", "ringing", "failed"]


async def test_transition_refuses_to_move_backwards(db):
    from store import calls, orgs

    org, _ = await orgs.get_or_create_org(db, "o")
    async with db.acquire() as conn:
        (call,) = await calls.create_many(conn, org["id"], [{"direction": "outbound", "status": "pending",
                                                            "to_number": "sip:a@b"}])
    assert await calls.transition(db, call["id"], "completed", allowed_from=("pending",)) is not None
    assert await calls.transition(db, call["id"], "ringing", allowed_from=("pending",)) is None
    assert (await calls.calls.get(db, org["id"], call["id"]))["status"] == "completed"


async def test_claim_pending_skips_locked_rows(db):
    from store import calls, orgs

    org, _ = await orgs.get_or_create_org(db, "o")
    async with db.acquire() as conn:
        await calls.create_many(conn, org["id"], [{"direction": "outbound", "status": "pending",
                                                   "to_number": f"sip:{i}@b"} for i in range(6)])
    a, b = await asyncio.gather(calls.claim_pending(db, "w1", 4), calls.claim_pending(db, "w2", 4))
    ids_a, ids_b = {c["id"] for c in a}, {c["id"] for c in b}
    assert not ids_a & ids_b and len(ids_a | ids_b) == 6
    assert await calls.claim_pending(db, "w3", 4) == []
