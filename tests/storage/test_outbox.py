"""The outbox: rows written in the caller's transaction, NOTIFY heard only after commit."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from store import outbox


async def _org(db: asyncpg.Pool) -> uuid.UUID:
    return await db.fetchval("INSERT INTO organizations (name, webhook_secret) VALUES ($1, 'x') RETURNING id",
                             f"org-{uuid.uuid4().hex[:6]}")


async def test_append_is_part_of_the_transaction_and_notifies_after_commit(db: asyncpg.Pool) -> None:
    org = await _org(db)
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = await db.acquire()

    def on_notify(*args: object) -> None:
        heard.put_nowait(str(args[3]))

    await listener.add_listener(outbox.CHANNEL, on_notify)
    try:
        async with db.acquire() as conn:
            tx = conn.transaction()
            await tx.start()
            first = await outbox.append(conn, org, None, "call_status", {"status": "ringing"})
            await tx.rollback()  # rolled back: no row, no notification
            async with conn.transaction():
                second = await outbox.append(conn, org, None, "call_status", {"status": "in_progress"})
        assert await asyncio.wait_for(heard.get(), 5) == str(second)
        assert heard.empty()
        events = await outbox.after(db, 0)
        assert [e["id"] for e in events] == [second] and first != second
        assert events[0]["payload"] == {"status": "in_progress"} and events[0]["org_id"] == org
    finally:
        await listener.remove_listener(outbox.CHANNEL, on_notify)
        await db.release(listener)
