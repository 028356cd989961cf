"""Shared fixtures: a real PostgreSQL (embedded pgserver, or DATABASE_URL), the real API app."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from store.migrate import migrate

TABLES = ("organizations, api_keys, agents, trunks, numbers, calls, call_events, transcript_turns, provider_keys,"
          " knowledge_bases, knowledge_sources, outbox, webhook_deliveries, webhook_attempts, call_reports")


def _admin_dsn(tmp_root: Path) -> str:
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    from store.db import embedded_database_url

    return embedded_database_url(tmp_root)


def _with_database(dsn: str, name: str) -> str:
    if "?" in dsn and "/?" not in dsn and dsn.split("?")[0].rsplit("/", 1)[-1]:
        base, query = dsn.split("?", 1)
        return f"{base.rsplit('/', 1)[0]}/{name}?{query}"
    base, _, query = dsn.partition("?")
    return f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A fresh, migrated database for this test session."""
    root = Path("/tmp") / f"sbtest-{os.getpid()}"  # short: the unix socket path must stay < 108 bytes
    admin = _admin_dsn(root)
    name = f"switchboard_test_{uuid.uuid4().hex[:8]}"

    async def setup() -> str:
        conn = await asyncpg.connect(admin)
        await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.close()
        dsn = _with_database(admin, name)
        conn = await asyncpg.connect(dsn)
        await migrate(conn)
        await conn.close()
        return dsn

    dsn = asyncio.run(setup())
    yield dsn

    async def teardown() -> None:
        conn = await asyncpg.connect(admin)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()

    asyncio.run(teardown())


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the test database, emptied before each test."""
    from store.db import create_pool

    pool = await create_pool(database_url, min_size=1, max_size=4)
    await pool.execute(f"TRUNCATE {TABLES} CASCADE")
    yield pool
    await pool.close()
