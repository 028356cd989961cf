"""Small shared helpers for the table modules."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any, Protocol

import asyncpg


class DB(Protocol):
    """A pool or a connection: whatever can run a query."""

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]: ...
    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None: ...
    async def fetchval(self, query: str, *args: Any) -> Any: ...
    async def execute(self, query: str, *args: Any) -> str: ...


def row(record: asyncpg.Record | None) -> dict[str, Any] | None:
    return dict(record) if record is not None else None


def one(record: asyncpg.Record | None) -> dict[str, Any]:
    """A row that must exist (an INSERT … RETURNING, an aggregate)."""
    if record is None:
        raise LookupError("the statement returned no row")
    return dict(record)


def rows(records: list[asyncpg.Record]) -> list[dict[str, Any]]:
    return [dict(r) for r in records]


class Where:
    """Builds a parameterised WHERE clause: ``w.add("status = {}", value)``."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.args: list[Any] = []

    def add(self, template: str, *values: Any) -> None:
        placeholders = []
        for value in values:
            self.args.append(value)
            placeholders.append(f"${len(self.args)}")
        self.parts.append(template.format(*placeholders))

    def sql(self) -> str:
        return " AND ".join(self.parts) if self.parts else "TRUE"

    def next_param(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"


def update_sets(changes: dict[str, Any], where: Where) -> str:
    """``col = $n`` pairs for an UPDATE, appending the values to ``where``'s arguments."""
    return ", ".join(f"{col} = {where.next_param(val)}" for col, val in changes.items())


@contextlib.asynccontextmanager
async def transaction(db: DB) -> AsyncIterator[asyncpg.Connection]:
    """A transaction on ``db``: a pool lends a connection for it, a connection runs it itself."""
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn, conn.transaction():
            yield conn
    else:
        async with db.transaction():  # type: ignore[attr-defined]
            yield db  # type: ignore[misc]
