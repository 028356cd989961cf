"""The outbox: the durable copy of every call event, written in the caller's transaction.

``append`` must run on the same connection (and inside the same transaction) as the state change it
describes, so the event exists exactly when the change does. ``pg_notify`` is transactional: listeners on
``CHANNEL`` hear the row id only after commit, then read the rows with ``after``.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from .types import DB, rows

CHANNEL = "switchboard_events"


async def append(db: DB, org_id: UUID | None, call_id: UUID | None, event: str, payload: dict[str, Any]) -> int:
    """Add one event; returns its id (ids increase in commit-independent insertion order)."""
    return int(await db.fetchval(
        "WITH o AS (INSERT INTO outbox (org_id, call_id, event, payload) VALUES ($1, $2, $3, $4::jsonb)"
        " RETURNING id) SELECT o.id FROM o, LATERAL (SELECT pg_notify($5, o.id::text)) n",
        org_id, call_id, event, payload, CHANNEL,
    ))


async def after(db: DB, last_id: int, *, call_id: UUID | None = None, limit: int = 500) -> list[dict[str, Any]]:
    """Events with id > ``last_id`` (optionally of one call), oldest first."""
    if call_id is None:
        return rows(await db.fetch("SELECT * FROM outbox WHERE id > $1 ORDER BY id LIMIT $2", last_id, limit))
    return rows(await db.fetch("SELECT * FROM outbox WHERE call_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                               call_id, last_id, limit))
