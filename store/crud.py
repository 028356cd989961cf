"""Tenant-scoped CRUD shared by the resource tables: every query carries the organization id."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from .errors import translating
from .types import DB, Where, one, row, rows, update_sets


class Table:
    def __init__(self, name: str, columns: frozenset[str], *, touch_updated_at: bool = True) -> None:
        self.name = name
        self.columns = columns
        self.touch_updated_at = touch_updated_at

    def _check(self, values: dict[str, Any]) -> None:
        unknown = set(values) - self.columns
        if unknown:
            raise ValueError(f"unknown columns for {self.name}: {sorted(unknown)}")

    async def insert(self, db: DB, org_id: UUID, values: dict[str, Any]) -> dict[str, Any]:
        self._check(values)
        cols = ["org_id", *values]
        params = ", ".join(f"${i}" for i in range(1, len(cols) + 1))
        async with translating():
            record = await db.fetchrow(
                f"INSERT INTO {self.name} ({', '.join(cols)}) VALUES ({params}) RETURNING *",
                org_id,
                *values.values(),
            )
        return one(record)

    async def get(self, db: DB, org_id: UUID, item_id: UUID) -> dict[str, Any] | None:
        return row(await db.fetchrow(f"SELECT * FROM {self.name} WHERE org_id = $1 AND id = $2", org_id, item_id))

    async def lock(self, db: DB, org_id: UUID, item_id: UUID) -> dict[str, Any] | None:
        """The row, locked FOR UPDATE until the caller's transaction ends."""
        return row(
            await db.fetchrow(f"SELECT * FROM {self.name} WHERE org_id = $1 AND id = $2 FOR UPDATE", org_id, item_id)
        )

    async def list(
        self, db: DB, org_id: UUID, where: Where | None, limit: int, offset: int
    ) -> tuple[list[dict[str, Any]], int]:
        where = where or Where()
        where.add("org_id = {}", org_id)
        sql_where = where.sql()
        lim = where.next_param(limit)
        off = where.next_param(offset)
        items = await db.fetch(
            f"SELECT * FROM {self.name} WHERE {sql_where} ORDER BY created_at DESC, id DESC LIMIT {lim} OFFSET {off}",
            *where.args,
        )
        total = await db.fetchval(f"SELECT count(*) FROM {self.name} WHERE {sql_where}", *where.args[:-2])
        return rows(items), total

    async def update(self, db: DB, org_id: UUID, item_id: UUID, changes: dict[str, Any]) -> dict[str, Any] | None:
        self._check(changes)
        if not changes:
            return await self.get(db, org_id, item_id)
        where = Where()
        sets = update_sets(changes, where)
        if self.touch_updated_at:
            sets += ", updated_at = now()"
        where.add("org_id = {}", org_id)
        where.add("id = {}", item_id)
        async with translating():
            return row(await db.fetchrow(f"UPDATE {self.name} SET {sets} WHERE {where.sql()} RETURNING *", *where.args))

    async def delete(self, db: DB, org_id: UUID, item_id: UUID) -> bool:
        async with translating():
            result = await db.execute(f"DELETE FROM {self.name} WHERE org_id = $1 AND id = $2", org_id, item_id)
        return result.endswith(" 1")
