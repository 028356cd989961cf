"""Phone numbers: unique server-wide, each on a trunk, optionally answered by an agent."""

from __future__ import annotations

from typing import Any

from .crud import Table
from .types import DB, row

numbers = Table("numbers", frozenset({"number", "trunk_id", "agent_id", "name", "status"}))


async def find_by_number(db: DB, e164: str) -> dict[str, Any] | None:
    """Inbound routing: the number row (any tenant) for an E.164 number."""
    return row(await db.fetchrow("SELECT * FROM numbers WHERE number = $1", e164))
