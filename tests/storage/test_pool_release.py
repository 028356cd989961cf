"""A connection goes back to the pool clean, without a reset query on every release."""

from __future__ import annotations

import asyncpg
import pytest

from store.db import create_pool


async def test_a_released_connection_has_no_open_transaction_and_nothing_of_it_was_committed(database_url: str) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=1)  # one connection: the next acquire gets it back
    try:
        async with pool.acquire() as conn:
            await conn.execute("CREATE TEMP TABLE IF NOT EXISTS scratch (n int)")
            await conn.execute("BEGIN")  # left open by its holder (a task cancelled mid-transaction, say)
            await conn.execute("INSERT INTO scratch VALUES (1)")
        async with pool.acquire() as conn:
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT count(*) FROM scratch") == 0  # rolled back, not committed
    finally:
        await pool.close()


@pytest.mark.filterwarnings("ignore:.*active notification listener")
async def test_a_listener_does_not_survive_its_release(database_url: str) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=1)
    heard: list[str] = []
    try:
        async with pool.acquire() as conn:
            await conn.add_listener("pool_release_test", lambda *args: heard.append(args[3]))
        async with pool.acquire() as conn:
            await conn.execute("NOTIFY pool_release_test, 'after release'")
            assert await conn.fetchval("SELECT 1") == 1  # a round trip after the NOTIFY
        assert heard == []
    finally:
        await pool.close()


async def test_release_sends_no_reset_query(database_url: str) -> None:
    """The default release runs pg_advisory_unlock_all/CLOSE ALL/UNLISTEN */RESET ALL each time: none here."""
    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            sent: list[str] = []
            conn.add_query_logger(lambda record: sent.append(record.query))
        assert not [q for q in sent if "RESET ALL" in q or "UNLISTEN" in q], sent
    finally:
        await pool.close()


async def test_the_default_release_would_send_one(database_url: str) -> None:
    """The check above can fail: asyncpg's own pool sends the reset query on release."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    try:
        sent: list[str] = []
        async with pool.acquire() as conn:
            conn.add_query_logger(lambda record: sent.append(record.query))
        assert [q for q in sent if "RESET ALL" in q], sent
    finally:
        await pool.close()
