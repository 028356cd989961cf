"""The asyncpg pool, and the embedded PostgreSQL (pgserver) used when no DATABASE_URL is given."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import asyncpg

log = logging.getLogger(__name__)

_embedded: dict[Path, Any] = {}


def embedded_database_url(data_dir: Path) -> str:
    """Start (or join) the embedded PostgreSQL under ``data_dir/postgres`` and return its URL.

    pgserver stops the server when the last process using it exits. Blocking: call it before the
    event loop starts, or in an executor.
    """
    import pgserver  # imported lazily: only the embedded default needs it

    pgdata = (data_dir / "postgres").resolve()
    pgdata.mkdir(parents=True, exist_ok=True)
    if len(str(pgdata)) > 90:
        raise ValueError(
            f"SWITCHBOARD_DATA_DIR is too deep for a PostgreSQL unix socket ({pgdata}); use a shorter path"
        )
    if pgdata not in _embedded:
        _embedded[pgdata] = pgserver.get_server(pgdata, cleanup_mode="stop")
    return _embedded[pgdata].get_uri()


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typ in ("json", "jsonb"):
        await conn.set_type_codec(typ, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=_init_connection, command_timeout=30
    )
    assert pool is not None
    return pool
