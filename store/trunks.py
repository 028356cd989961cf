"""SIP trunks (passwords encrypted at rest) and their live registration state."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from .crud import Table
from .types import DB, one, row

TRUNK_COLUMNS = frozenset(
    {
        "name", "host", "port", "transport", "username", "password_enc", "auth_username", "realm",
        "register", "register_expires", "outbound_proxy", "from_domain", "number_format", "dial_prefix",
        "max_concurrent_calls", "calls_per_second", "inbound_cidrs", "codecs", "rate_per_minute", "enabled",
    }
)
trunks = Table("trunks", TRUNK_COLUMNS)


async def usage(db: DB, org_id: UUID, trunk_id: UUID) -> dict[str, int]:
    record = await db.fetchrow(
        "SELECT (SELECT count(*) FROM numbers WHERE org_id = $1 AND trunk_id = $2) AS numbers,"
        " (SELECT count(*) FROM calls WHERE org_id = $1 AND trunk_id = $2"
        "  AND status IN ('pending', 'ringing', 'in_progress')) AS active_calls",
        org_id,
        trunk_id,
    )
    return one(record)


async def set_registration(
    db: DB, trunk_id: UUID, state: str, last_error: str | None, expires_at: Any | None
) -> dict[str, Any] | None:
    return row(
        await db.fetchrow(
            "UPDATE trunks SET reg_state = $2, reg_last_error = $3, reg_expires_at = $4 WHERE id = $1 RETURNING *",
            trunk_id,
            state,
            last_error,
            expires_at,
        )
    )


async def all_enabled(db: DB) -> list[dict[str, Any]]:
    """Every enabled trunk of every organization (the SIP side serves them all)."""
    return [dict(r) for r in await db.fetch("SELECT * FROM trunks WHERE enabled ORDER BY created_at")]


async def get_any(db: DB, trunk_id: UUID) -> dict[str, Any] | None:
    return row(await db.fetchrow("SELECT * FROM trunks WHERE id = $1", trunk_id))


async def orgs_by_source(db: DB, source_host: str) -> list[UUID]:
    """Organizations with a trunk whose ``inbound_cidrs`` contain ``source_host`` (an IP address)."""
    records = await db.fetch(
        "SELECT DISTINCT org_id FROM trunks WHERE $1::inet <<= ANY(inbound_cidrs) ORDER BY org_id", source_host)
    return [r["org_id"] for r in records]
