"""Recording storage: sizes per organization, recordings past their retention, and the marks a call
carries when policy left it without a recording (``recording_status``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from .types import DB, rows


async def usage_bytes(db: DB, org_id: UUID) -> int:
    """Bytes of the organization's measured recordings (ended calls; see ``unmeasured``)."""
    return int(await db.fetchval(
        "SELECT COALESCE(sum(recording_bytes), 0) FROM calls WHERE org_id = $1 AND recording_path IS NOT NULL",
        org_id) or 0)


async def unmeasured(db: DB, org_id: UUID | None = None, limit: int = 500) -> list[dict[str, Any]]:
    """Ended calls whose recording has not been measured yet (all organizations when ``org_id`` is None)."""
    return rows(await db.fetch(
        "SELECT id, recording_path FROM calls WHERE recording_path IS NOT NULL AND recording_bytes IS NULL"
        " AND ended_at IS NOT NULL AND ($1::uuid IS NULL OR org_id = $1) ORDER BY ended_at LIMIT $2",
        org_id, limit))


async def being_written(db: DB, org_id: UUID) -> list[str]:
    """Paths of the organization's recordings still being written (calls not ended)."""
    found = await db.fetch("SELECT recording_path FROM calls WHERE org_id = $1 AND recording_path IS NOT NULL"
                           " AND ended_at IS NULL", org_id)
    return [r["recording_path"] for r in found]


async def set_sizes(db: DB, sizes: list[tuple[UUID, int]]) -> None:
    if sizes:
        await db.execute(
            "UPDATE calls SET recording_bytes = s.bytes FROM unnest($1::uuid[], $2::bigint[]) AS s(id, bytes)"
            " WHERE calls.id = s.id", [i for i, _ in sizes], [b for _, b in sizes])


async def mark_skipped(db: DB, call_id: UUID) -> None:
    await db.execute("UPDATE calls SET recording_status = 'skipped_quota', updated_at = now() WHERE id = $1",
                     call_id)


async def expired(db: DB, ended_before: datetime, limit: int = 500) -> list[dict[str, Any]]:
    return rows(await db.fetch(
        "SELECT id, recording_path FROM calls WHERE recording_path IS NOT NULL AND ended_at < $1"
        " ORDER BY ended_at LIMIT $2", ended_before, limit))


async def clear(db: DB, call_ids: list[UUID]) -> None:
    """The recordings of these calls were deleted: no path, no size, and the reason on the call."""
    if call_ids:
        await db.execute(
            "UPDATE calls SET recording_path = NULL, recording_bytes = NULL, recording_status = 'deleted_retention',"
            " updated_at = now() WHERE id = ANY($1::uuid[])", call_ids)


async def referenced(db: DB, call_ids: list[UUID]) -> set[UUID]:
    """Which of these calls still point at a recording."""
    found = await db.fetch("SELECT id FROM calls WHERE id = ANY($1::uuid[]) AND recording_path IS NOT NULL",
                           call_ids)
    return {r["id"] for r in found}
