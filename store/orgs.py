"""Organizations (tenants) and their API keys (stored hashed)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from .crypto import hash_api_key, new_api_key
from .types import DB, one, row, rows


async def get_or_create_org(db: DB, name: str) -> tuple[dict[str, Any], bool]:
    existing = await db.fetchrow("SELECT * FROM organizations WHERE name = $1", name)
    if existing:
        return dict(existing), False
    created = await db.fetchrow(
        "INSERT INTO organizations (name, webhook_secret) VALUES ($1, $2)"
        " ON CONFLICT (name) DO NOTHING RETURNING *",
        name,
        "whsec_" + secrets.token_urlsafe(24),
    )
    if created is None:  # created concurrently by another process
        return one(await db.fetchrow("SELECT * FROM organizations WHERE name = $1", name)), False
    return dict(created), True


async def count_orgs(db: DB) -> int:
    return await db.fetchval("SELECT count(*) FROM organizations")


async def create_api_key(db: DB, org_id: UUID, name: str = "") -> tuple[dict[str, Any], str]:
    """Returns the stored row and the plain key (shown once, never stored)."""
    plain = new_api_key()
    record = await db.fetchrow(
        "INSERT INTO api_keys (org_id, name, key_prefix, key_hash) VALUES ($1, $2, $3, $4) RETURNING *",
        org_id,
        name,
        plain[:10],
        hash_api_key(plain),
    )
    return one(record), plain


async def authenticate(db: DB, plain: str) -> dict[str, Any] | None:
    """The API key row (with ``org_id``) for a plain key. ``last_used_at`` is touched at most once a
    minute, so authenticated reads do not each cost a write."""
    record = row(await db.fetchrow("SELECT * FROM api_keys WHERE key_hash = $1", hash_api_key(plain)))
    if record is not None:
        last = record["last_used_at"]
        if last is None or (datetime.now(UTC) - last).total_seconds() > 60:
            await db.execute("UPDATE api_keys SET last_used_at = now() WHERE id = $1", record["id"])
    return record


async def list_api_keys(db: DB, org_id: UUID, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    items = await db.fetch(
        "SELECT * FROM api_keys WHERE org_id = $1 ORDER BY created_at DESC, id LIMIT $2 OFFSET $3",
        org_id,
        limit,
        offset,
    )
    total = await db.fetchval("SELECT count(*) FROM api_keys WHERE org_id = $1", org_id)
    return rows(items), total


async def get_api_key(db: DB, org_id: UUID, key_id: UUID) -> dict[str, Any] | None:
    return row(await db.fetchrow("SELECT * FROM api_keys WHERE org_id = $1 AND id = $2", org_id, key_id))


async def delete_api_key(db: DB, org_id: UUID, key_id: UUID) -> str:
    """Delete a key unless it is the organization's last: 'deleted', 'last' or 'missing'.

    Run inside a transaction: the organization row is locked so two deletions cannot both pass the check.
    """
    await db.execute("SELECT 1 FROM organizations WHERE id = $1 FOR UPDATE", org_id)
    if await get_api_key(db, org_id, key_id) is None:
        return "missing"
    if await db.fetchval("SELECT count(*) FROM api_keys WHERE org_id = $1", org_id) <= 1:
        return "last"
    await db.execute("DELETE FROM api_keys WHERE org_id = $1 AND id = $2", org_id, key_id)
    return "deleted"


async def regenerate_api_key(db: DB, org_id: UUID, key_id: UUID) -> tuple[dict[str, Any], str] | None:
    plain = new_api_key()
    record = await db.fetchrow(
        "UPDATE api_keys SET key_prefix = $3, key_hash = $4, last_used_at = NULL"
        " WHERE org_id = $1 AND id = $2 RETURNING *",
        org_id,
        key_id,
        plain[:10],
        hash_api_key(plain),
    )
    return (dict(record), plain) if record else None
