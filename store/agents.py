"""Agents: name and enabled as columns, the rest of the validated configuration as JSON."""

from __future__ import annotations

from uuid import UUID

from .crud import Table
from .types import DB

agents = Table("agents", frozenset({"name", "enabled", "config"}))


async def active_call_count(db: DB, org_id: UUID, agent_id: UUID) -> int:
    return await db.fetchval(
        "SELECT count(*) FROM calls WHERE org_id = $1 AND agent_id = $2"
        " AND status IN ('pending', 'ringing', 'in_progress')",
        org_id,
        agent_id,
    )


async def find_by_name(db: DB, org_id: UUID, name: str) -> dict | None:
    record = await db.fetchrow(
        "SELECT * FROM agents WHERE org_id = $1 AND name = $2 ORDER BY created_at LIMIT 1", org_id, name
    )
    return dict(record) if record else None
