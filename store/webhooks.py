"""Webhook deliveries and their attempts, the organization's webhook settings and signing secret.

Claiming is lease-based: a deliverer takes due rows with ``FOR UPDATE SKIP LOCKED`` and stamps
``locked_until``; a row whose lease has run out (its worker died mid-delivery) is due again, so nothing
is lost and any worker may deliver it.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any
from uuid import UUID

from .types import DB, Where, row, rows

STATUSES = ("pending", "delivered", "failed")


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


# -- organization settings ------------------------------------------------------------------------------
async def settings(db: DB, org_id: UUID) -> dict[str, Any] | None:
    return row(await db.fetchrow(
        "SELECT id, webhook_url, webhook_events, webhook_secret, webhook_secret_rotated_at FROM organizations"
        " WHERE id = $1", org_id))


async def update_settings(db: DB, org_id: UUID, changes: dict[str, Any]) -> dict[str, Any] | None:
    allowed = {"webhook_url", "webhook_events"}
    if set(changes) - allowed:
        raise ValueError(f"unknown settings: {sorted(set(changes) - allowed)}")
    if changes:
        where = Where()
        sets = ", ".join(f"{k} = {where.next_param(v)}" for k, v in changes.items())
        where.add("id = {}", org_id)
        await db.execute(f"UPDATE organizations SET {sets} WHERE {where.sql()}", *where.args)
    return await settings(db, org_id)


async def rotate_secret(db: DB, org_id: UUID) -> str:
    secret = new_secret()
    await db.execute("UPDATE organizations SET webhook_secret = $2, webhook_secret_rotated_at = now() WHERE id = $1",
                     org_id, secret)
    return secret


async def secrets_for(db: DB, org_ids: list[UUID]) -> dict[UUID, str]:
    found = await db.fetch("SELECT id, webhook_secret FROM organizations WHERE id = ANY($1::uuid[])", org_ids)
    return {r["id"]: r["webhook_secret"] for r in found}


# -- deliveries -----------------------------------------------------------------------------------------
async def insert_deliveries(db: DB, values: list[dict[str, Any]]) -> int:
    """Insert deliveries in one statement; an outbox row that already has one for a URL (it was
    dispatched twice) gets no second. Returns how many were created."""
    if not values:
        return 0
    import json

    cols = ("id", "org_id", "outbox_id", "call_id", "event", "event_id", "url", "method", "headers", "body",
            "source", "event_at")
    arrays = [[v[c] if c != "headers" else json.dumps(v[c]) for v in values] for c in cols]
    return len(await db.fetch(
        "INSERT INTO webhook_deliveries (id, org_id, outbox_id, call_id, event, event_id, url, method, headers,"
        " body, source, event_at) SELECT i, o, ob, c, e, ei, u, m, h::jsonb, b, s, t FROM unnest($1::uuid[],"
        " $2::uuid[], $3::bigint[], $4::uuid[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],"
        " $10::text[], $11::text[], $12::timestamptz[]) AS x(i, o, ob, c, e, ei, u, m, h, b, s, t)"
        " ON CONFLICT (outbox_id, url) DO NOTHING RETURNING id",
        *arrays,
    ))


async def claim_due(db: DB, worker: str, limit: int, lease_seconds: float) -> list[dict[str, Any]]:
    """Take up to ``limit`` due deliveries for ``lease_seconds``; each claim counts as an attempt."""
    return rows(await db.fetch(
        "UPDATE webhook_deliveries d SET locked_until = clock_timestamp() + make_interval(secs => $3),"
        " locked_by = $1, attempts = d.attempts + 1, updated_at = clock_timestamp()"
        " FROM (SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= clock_timestamp()"
        "       AND (locked_until IS NULL OR locked_until < clock_timestamp())"
        "       ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED) due"
        " WHERE d.id = due.id RETURNING d.*",
        worker, limit, lease_seconds,
    ))


async def next_due_at(db: DB) -> datetime | None:
    return await db.fetchval(
        "SELECT min(greatest(next_attempt_at, coalesce(locked_until, next_attempt_at))) FROM webhook_deliveries"
        " WHERE status = 'pending'")


async def record_attempt(db: DB, delivery: dict[str, Any], worker: str, started_at: datetime, duration_ms: float,
                         status_code: int | None, error: str | None, response: str | None,
                         outcome: str, next_attempt_at: datetime | None) -> bool:
    """Log the attempt and settle the delivery: 'delivered', 'failed' (gave up) or 'pending' (retry at
    ``next_attempt_at``). False when this worker's lease was lost meanwhile (another worker owns it)."""
    settled = await db.fetchval(  # one statement: settles the delivery and logs the attempt atomically
        "WITH s AS (UPDATE webhook_deliveries SET status = $3, next_attempt_at = coalesce($4, next_attempt_at),"
        " locked_until = NULL, locked_by = NULL, last_status_code = $5, last_error = $6,"
        " delivered_at = CASE WHEN $3 = 'delivered' THEN clock_timestamp() ELSE delivered_at END,"
        " updated_at = clock_timestamp() WHERE id = $1 AND locked_by = $2 AND status = 'pending' RETURNING id),"
        " a AS (INSERT INTO webhook_attempts (delivery_id, attempt, worker, started_at, duration_ms, status_code,"
        " error, response) VALUES ($1, $7, $2, $8, $9, $5, $6, $10))"
        " SELECT id FROM s",
        delivery["id"], worker, outcome, next_attempt_at, status_code, error, delivery["attempts"], started_at,
        duration_ms, response,
    )
    return settled is not None


async def list_deliveries(db: DB, org_id: UUID, filters: dict[str, Any], limit: int, offset: int
                          ) -> tuple[list[dict[str, Any]], int]:
    where = Where()
    where.add("org_id = {}", org_id)
    for col in ("call_id", "event", "status"):
        if filters.get(col) is not None:
            where.add(f"{col} = {{}}", filters[col])
    sql_where = where.sql()
    total = await db.fetchval(f"SELECT count(*) FROM webhook_deliveries WHERE {sql_where}", *where.args)
    lim, off = where.next_param(limit), where.next_param(offset)
    items = await db.fetch(
        f"SELECT * FROM webhook_deliveries WHERE {sql_where} ORDER BY created_at DESC, id DESC"
        f" LIMIT {lim} OFFSET {off}", *where.args)
    return rows(items), total


async def get_delivery(db: DB, org_id: UUID, delivery_id: UUID) -> dict[str, Any] | None:
    return row(await db.fetchrow("SELECT * FROM webhook_deliveries WHERE org_id = $1 AND id = $2",
                                 org_id, delivery_id))


async def attempts(db: DB, delivery_id: UUID) -> list[dict[str, Any]]:
    return rows(await db.fetch("SELECT * FROM webhook_attempts WHERE delivery_id = $1 ORDER BY id", delivery_id))


async def retry(db: DB, org_id: UUID, delivery_id: UUID) -> str:
    """Make a delivery due now: 'queued', 'busy' (a worker is sending it right now) or 'missing'.
    A delivered or failed delivery is sent again (once more, with the same event id)."""
    current = await get_delivery(db, org_id, delivery_id)
    if current is None:
        return "missing"
    updated = await db.fetchval(
        "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = clock_timestamp(),"
        " updated_at = clock_timestamp() WHERE org_id = $1 AND id = $2"
        " AND (locked_until IS NULL OR locked_until < clock_timestamp()) RETURNING id",
        org_id, delivery_id)
    return "queued" if updated else "busy"


async def queue_depth(db: DB) -> int:
    return int(await db.fetchval("SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'"))


async def undispatched(db: DB) -> int:
    return int(await db.fetchval("SELECT count(*) FROM outbox WHERE dispatched_at IS NULL"))
