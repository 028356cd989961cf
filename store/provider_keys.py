"""Bring-your-own provider keys (encrypted at rest; only a mask is ever returned)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

from .crud import Table
from .crypto import SecretBox
from .types import DB

provider_keys = Table(
    "provider_keys",
    frozenset({"provider_type", "provider_name", "key_enc", "key_masked", "is_default"}),
    touch_updated_at=False,
)


async def find(db: DB, org_id: UUID, provider_type: str, provider_name: str) -> str | None:
    """The encrypted key for a provider: the organization's default for it first, else its newest."""
    return await db.fetchval(
        "SELECT key_enc FROM provider_keys WHERE org_id = $1 AND provider_type = $2 AND provider_name = $3"
        " ORDER BY is_default DESC, created_at DESC LIMIT 1",
        org_id, provider_type, provider_name,
    )


async def names(db: DB, org_id: UUID) -> set[str]:
    """The providers the organization holds a key for (any type)."""
    rows = await db.fetch("SELECT DISTINCT provider_name FROM provider_keys WHERE org_id = $1", org_id)
    return {r["provider_name"] for r in rows}


def lookup(db: DB, secrets: SecretBox, org_id: UUID | None) -> Callable[[str, str], Awaitable[str | None]]:
    """The organization's key lookup ``(provider_type, provider_name) → key`` that the agent runtime takes
    (``agents.factory.KeyLookup``). No organization: no keys. A failure raises (never a fallback)."""

    async def find_key(provider_type: str, provider_name: str) -> str | None:
        if org_id is None:
            return None
        enc = await find(db, org_id, provider_type, provider_name)
        return secrets.decrypt(enc) if enc else None

    return find_key


async def first_of(db: DB, org_id: Any, provider_type: str, candidates: list[str]) -> str | None:
    """The provider, among ``candidates``, that the organization holds a key of this type for (its default first)."""
    return await db.fetchval(
        "SELECT provider_name FROM provider_keys WHERE org_id = $1 AND provider_type = $2"
        " AND provider_name = ANY($3::text[]) ORDER BY is_default DESC, created_at DESC LIMIT 1",
        org_id, provider_type, candidates)
