"""Calls, their status events and transcript turns.

Every status change is one statement that updates the call and appends its event together, guarded by
the statuses it may leave (so a racing worker or API request cannot move a call backwards). The writes
here are called only by ``switchboard.calls.events``, which adds the outbox row in the same transaction.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sipcore.causes import ACTIVE_STATUSES, ENDED_STATUSES

from .crud import Table
from .errors import translating
from .types import DB, Where, one, row, rows, transaction, update_sets

ACTIVE: tuple[str, ...] = tuple(ACTIVE_STATUSES)
ENDED: tuple[str, ...] = tuple(ENDED_STATUSES)

CALL_COLUMNS = frozenset(
    {
        "direction", "status", "to_number", "from_number", "agent_id", "agent_name", "agent_config",
        "trunk_id", "number_id", "record", "metadata", "user_data", "max_duration_seconds", "webhooks",
        "started_at", "answered_at", "ended_at", "hangup_cause", "disconnection_reason", "sip_call_id",
        "sip_status", "recording_path", "cost", "metrics", "worker_id", "sip_source", "engine_call_id",
        "error_message", "hangup_requested", "recording_bytes",
    }
)
calls = Table("calls", CALL_COLUMNS)


async def create_many(db: DB, org_id: UUID, values: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Insert calls and their first event in one transaction (all or nothing)."""
    created = []
    async with transaction(db) as conn:
        for v in values:
            call = await calls.insert(conn, org_id, v)
            await conn.execute(
                "INSERT INTO call_events (call_id, status, detail) VALUES ($1, $2, $3)",
                call["id"],
                call["status"],
                {"direction": call["direction"]},
            )
            created.append(call)
    return created


async def transition(
    db: DB,
    call_id: UUID,
    status: str,
    *,
    allowed_from: tuple[str, ...] = ACTIVE,
    org_id: UUID | None = None,
    detail: dict[str, Any] | None = None,
    **fields: Any,
) -> dict[str, Any] | None:
    """Move a call to ``status`` (setting ``fields`` too) if it is in ``allowed_from``; log the event.

    Returns the updated call, or None when the call is missing or was not in an allowed status.
    """
    changes = {"status": status, **fields}
    unknown = set(changes) - CALL_COLUMNS
    if unknown:
        raise ValueError(f"unknown call columns: {sorted(unknown)}")
    where = Where()
    sets = update_sets(changes, where)
    where.add("id = {}", call_id)
    where.add("status = ANY({}::text[])", list(allowed_from))
    if org_id is not None:
        where.add("org_id = {}", org_id)
    status_param = where.next_param(status)
    detail_param = where.next_param(detail or {})  # the pool's jsonb codec encodes it
    sql = (
        f"WITH c AS (UPDATE calls SET {sets}, updated_at = now() WHERE {where.sql()} RETURNING *),"
        f" e AS (INSERT INTO call_events (call_id, status, detail)"
        f"       SELECT id, {status_param}, {detail_param}::jsonb FROM c)"
        f" SELECT * FROM c"
    )
    async with translating():
        return row(await db.fetchrow(sql, *where.args))


async def list_calls(
    db: DB, org_id: UUID, filters: dict[str, Any], limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    where = Where()
    for col in ("agent_id", "number_id", "trunk_id", "status", "direction"):
        if filters.get(col) is not None:
            where.add(f"{col} = {{}}", filters[col])
    if filters.get("active"):
        where.add("status = ANY({}::text[])", list(ACTIVE))
    if filters.get("date_from") is not None:
        where.add("created_at >= {}", filters["date_from"])
    if filters.get("date_to") is not None:
        where.add("created_at <= {}", filters["date_to"])
    if filters.get("search"):
        term = filters["search"]
        where.add("(to_number ILIKE {0} OR from_number ILIKE {0} OR id::text = {1})", f"%{_like(term)}%", term)
    return await calls.list(db, org_id, where, limit, offset)


def _like(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def delete_ended(db: DB, org_id: UUID, call_id: UUID) -> str:
    """Delete an ended call: returns 'deleted', 'active' or 'missing'."""
    result = one(await db.fetchrow(
        "WITH d AS (DELETE FROM calls WHERE org_id = $1 AND id = $2 AND status = ANY($3::text[]) RETURNING id)"
        " SELECT (SELECT count(*) FROM d) AS deleted,"
        " (SELECT status FROM calls WHERE org_id = $1 AND id = $2) AS status",
        org_id,
        call_id,
        list(ENDED),
    ))
    if result["deleted"]:
        return "deleted"
    return "active" if result["status"] is not None else "missing"


async def events(db: DB, call_id: UUID) -> list[dict[str, Any]]:
    return rows(await db.fetch("SELECT * FROM call_events WHERE call_id = $1 ORDER BY id", call_id))


async def transcript(db: DB, call_id: UUID) -> list[dict[str, Any]]:
    return rows(await db.fetch("SELECT * FROM transcript_turns WHERE call_id = $1 ORDER BY id", call_id))


async def add_turn(db: DB, call_id: UUID, turn: dict[str, Any]) -> dict[str, Any]:
    cols = ["call_id", *turn]
    params = ", ".join(f"${i}" for i in range(1, len(cols) + 1))
    return one(
        await db.fetchrow(
            f"INSERT INTO transcript_turns ({', '.join(cols)}) VALUES ({params}) RETURNING *", call_id, *turn.values()
        )
    )


async def add_event(db: DB, call_id: UUID, kind: str, detail: dict[str, Any]) -> None:
    """A non-status event (dtmf, transfer…) in the call's history, stamped with the call's status."""
    await db.execute(
        "INSERT INTO call_events (call_id, kind, status, detail)"
        " SELECT id, $2, status, $3 FROM calls WHERE id = $1", call_id, kind, detail
    )


async def insert_inbound(db: DB, org_id: UUID | None, values: dict[str, Any]) -> dict[str, Any]:
    """An inbound call row with its first event, before the INVITE is answered or refused."""
    async with transaction(db) as conn:
        cols = ["org_id", "direction", *values]
        params = ", ".join(f"${i}" for i in range(1, len(cols) + 1))
        async with translating():
            call = one(await conn.fetchrow(
                f"INSERT INTO calls ({', '.join(cols)}) VALUES ({params}) RETURNING *", org_id, "inbound", *values.values()
            ))
        await conn.execute("INSERT INTO call_events (call_id, status, detail) VALUES ($1, $2, $3)",
                         call["id"], call["status"], {"direction": "inbound"})
    return call


async def release_claim(db: DB, call_id: UUID, worker_id: str) -> None:
    """Give a claimed pending call back (its trunk is at its limit): another pass will take it."""
    await db.execute("UPDATE calls SET worker_id = NULL WHERE id = $1 AND worker_id = $2 AND status = 'pending'",
                     call_id, worker_id)


async def trunk_busy_channels(db: DB, trunk_id: UUID) -> int:
    """Calls using a trunk's channels across all workers: live ones and claimed pending ones."""
    return await db.fetchval(
        "SELECT count(*) FROM calls WHERE trunk_id = $1 AND (status IN ('ringing', 'in_progress')"
        " OR (status = 'pending' AND worker_id IS NOT NULL))",
        trunk_id,
    )


async def close_orphans(db: DB, worker_id: str) -> list[dict[str, Any]]:
    """At start-up: calls this worker left ringing or in progress when it died end with SYSTEM_SHUTDOWN,
    and pending calls it had claimed but not yet placed go back to the queue.

    A closed call's end is its last evidence of life — its last event or transcript turn, or the last write
    to its recording (``last_media_at``, which the caller fills from the file beforehand) — not the restart,
    so its duration and cost exclude the downtime. Each returned row has ``previous_status``."""
    await db.execute("UPDATE calls SET worker_id = NULL WHERE status = 'pending' AND worker_id = $1", worker_id)
    sql = (
        "WITH o AS (SELECT c.id, c.status AS previous_status, GREATEST("
        "   c.started_at, c.answered_at, c.last_media_at,"
        "   (SELECT max(created_at) FROM call_events e WHERE e.call_id = c.id),"
        "   (SELECT max(created_at) FROM transcript_turns t WHERE t.call_id = c.id)) AS last_alive"
        "  FROM calls c WHERE c.status IN ('ringing', 'in_progress') AND c.worker_id = $1 FOR UPDATE),"
        " c AS (UPDATE calls SET status = CASE WHEN answered_at IS NULL THEN 'failed' ELSE 'completed' END,"
        "   ended_at = COALESCE(o.last_alive, now()), hangup_cause = 'SYSTEM_SHUTDOWN',"
        "   disconnection_reason = 'system_shutdown',"
        "   error_message = 'the server stopped without closing the call; closed at its restart',"
        "   cost = CASE WHEN answered_at IS NULL THEN NULL ELSE round((SELECT rate_per_minute FROM trunks t"
        "     WHERE t.id = calls.trunk_id) * GREATEST(0, extract(epoch FROM COALESCE(o.last_alive, now())"
        "     - answered_at)) / 60.0, 6) END,"
        "   updated_at = now()"
        "  FROM o WHERE calls.id = o.id RETURNING calls.*, o.previous_status),"
        " e AS (INSERT INTO call_events (call_id, status, detail)"
        "       SELECT id, status, '{\"hangup_cause\": \"SYSTEM_SHUTDOWN\"}'::jsonb FROM c)"
        " SELECT * FROM c"
    )
    return rows(await db.fetch(sql, worker_id))


async def mark_placed(db: DB, call_id: UUID, sip_call_id: str | None, engine_call_id: str,
                      started_at: Any) -> dict[str, Any] | None:
    """The dialer sent the INVITE: note its ids; None when the call is no longer pending (canceled)."""
    return row(await db.fetchrow(
        "UPDATE calls SET sip_call_id = $2, engine_call_id = $3, started_at = $4, updated_at = now()"
        " WHERE id = $1 AND status = 'pending' RETURNING *", call_id, sip_call_id, engine_call_id, started_at))


async def set_late_sip_call_id(db: DB, call_id: UUID, sip_call_id: str) -> None:
    await db.execute("UPDATE calls SET sip_call_id = $1 WHERE id = $2 AND sip_call_id IS NULL", sip_call_id, call_id)


async def open_calls(db: DB, worker_id: str) -> list[dict[str, Any]]:
    """Calls this worker holds ringing or in progress (at start-up: left by a crash)."""
    return rows(await db.fetch("SELECT id, recording_path FROM calls WHERE status IN ('ringing', 'in_progress')"
                               " AND worker_id = $1", worker_id))


async def set_last_media(db: DB, call_id: UUID, at: Any) -> None:
    await db.execute("UPDATE calls SET last_media_at = $2 WHERE id = $1", call_id, at)


async def request_hangup(db: DB, org_id: UUID, call_id: UUID, reason: str) -> str | None:
    """Ask the worker that owns a live call to hang it up; returns that worker (None: not active)."""
    return await db.fetchval(
        "UPDATE calls SET hangup_requested = $3 WHERE org_id = $1 AND id = $2"
        " AND status = ANY($4::text[]) RETURNING worker_id", org_id, call_id, reason, list(ACTIVE))


async def hangups_requested(db: DB, worker_id: str) -> list[dict[str, Any]]:
    """Live calls of this worker whose hang-up another worker (the API) asked for."""
    return rows(await db.fetch("SELECT * FROM calls WHERE worker_id = $1"
                               " AND hangup_requested IS NOT NULL AND status = ANY($2::text[])",
                               worker_id, list(ACTIVE)))


async def expire_ownerless(db: DB, older_than_seconds: float) -> int:
    """Delete calls that belong to no organization (refused strangers recorded by older versions)."""
    result = await db.execute("DELETE FROM calls WHERE org_id IS NULL AND created_at < now() - make_interval("
                              "secs => $1)", older_than_seconds)
    return int(result.split()[-1])


async def claim_pending(db: DB, worker_id: str, limit: int) -> list[dict[str, Any]]:
    """Claim pending outbound calls for this worker (several workers may share the database)."""
    return rows(
        await db.fetch(
            "WITH picked AS (SELECT id FROM calls WHERE status = 'pending' AND direction = 'outbound'"
            "  AND worker_id IS NULL ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
            " UPDATE calls SET worker_id = $1, updated_at = now() FROM picked WHERE calls.id = picked.id"
            " RETURNING calls.*",
            worker_id,
            limit,
        )
    )

