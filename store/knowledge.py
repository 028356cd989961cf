"""Knowledge bases and their sources: what the API shows and what ingestion claims, resumes and refreshes.

The chunks and vectors live in the vector store (agents.knowledge); these rows are the source of truth
for which knowledge bases exist, who owns them and how far their ingestion got.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from .crud import Table
from .types import DB, row, rows, transaction

knowledge_bases = Table("knowledge_bases", frozenset({"name", "status", "error_message", "enable_auto_refresh"}))

ACTIVE = ("pending", "in_progress")


async def create(db: DB, org_id: UUID, name: str, *, auto_refresh: bool, texts: Sequence[dict[str, str]],
                 urls: Sequence[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A knowledge base and its first sources, in one transaction (status follows the sources)."""
    async with transaction(db) as conn:
        kb = await knowledge_bases.insert(conn, org_id, {
            "name": name, "enable_auto_refresh": auto_refresh,
            "status": "in_progress" if (texts or urls) else "complete",
        })
        sources = await add_sources(conn, org_id, kb["id"], texts, urls)
    return kb, sources


async def add_sources(db: DB, org_id: UUID, kb_id: UUID, texts: Sequence[dict[str, str]],
                      urls: Sequence[str]) -> list[dict[str, Any]]:
    """New pending sources, texts first, each in the order given (clock_timestamp() orders them within one
    transaction); the knowledge base goes back to in_progress."""
    added: list[dict[str, Any]] = []
    async with transaction(db) as conn:
        for item in texts:
            added.append(dict(await conn.fetchrow(
                "INSERT INTO knowledge_sources (org_id, kb_id, type, title, content, created_at)"
                " VALUES ($1, $2, 'text', $3, $4, clock_timestamp()) RETURNING *",
                org_id, kb_id, item.get("title") or "", item["text"],
            )))
        for url in urls:
            added.append(dict(await conn.fetchrow(
                "INSERT INTO knowledge_sources (org_id, kb_id, type, title, url, created_at)"
                " VALUES ($1, $2, 'url', '', $3, clock_timestamp()) RETURNING *",
                org_id, kb_id, url,
            )))
        if added:
            await conn.execute(
                "UPDATE knowledge_bases SET status = 'in_progress', error_message = NULL, updated_at = now()"
                " WHERE org_id = $1 AND id = $2", org_id, kb_id)
    return added


async def sources_of(db: DB, org_id: UUID, kb_ids: Sequence[UUID]) -> dict[UUID, list[dict[str, Any]]]:
    """The sources of these knowledge bases (without text content), oldest first, by knowledge base."""
    out: dict[UUID, list[dict[str, Any]]] = {kb_id: [] for kb_id in kb_ids}
    if not kb_ids:
        return out
    for record in await db.fetch(
        "SELECT id, org_id, kb_id, type, title, url, status, error_message, chunk_count, fetched_at, created_at,"
        " updated_at FROM knowledge_sources WHERE org_id = $1 AND kb_id = ANY($2::uuid[]) ORDER BY created_at, id",
        org_id, list(kb_ids),
    ):
        out[record["kb_id"]].append(dict(record))
    return out


async def get_source(db: DB, org_id: UUID, kb_id: UUID, source_id: UUID) -> dict[str, Any] | None:
    return row(await db.fetchrow(
        "SELECT * FROM knowledge_sources WHERE org_id = $1 AND kb_id = $2 AND id = $3", org_id, kb_id, source_id))


async def source_titles(db: DB, org_id: UUID, source_ids: Sequence[UUID]) -> dict[UUID, dict[str, Any]]:
    records = await db.fetch(
        "SELECT id, type, title, url FROM knowledge_sources WHERE org_id = $1 AND id = ANY($2::uuid[])",
        org_id, list(source_ids))
    return {r["id"]: dict(r) for r in records}


async def delete_source(db: DB, org_id: UUID, kb_id: UUID, source_id: UUID) -> bool:
    async with transaction(db) as conn:
        result = await conn.execute(
            "DELETE FROM knowledge_sources WHERE org_id = $1 AND kb_id = $2 AND id = $3", org_id, kb_id, source_id)
        if not result.endswith(" 1"):
            return False
        await refresh_status(conn, kb_id)
    return True


async def delete(db: DB, org_id: UUID, kb_id: UUID) -> bool:
    """Delete the knowledge base (its sources cascade) and detach it from the organization's agents."""
    async with transaction(db) as conn:
        if not await knowledge_bases.delete(conn, org_id, kb_id):
            return False
        await conn.execute(
            "UPDATE agents SET config = jsonb_set(config, '{knowledge_base_ids}',"
            "  (SELECT coalesce(jsonb_agg(e), '[]'::jsonb) FROM jsonb_array_elements(config->'knowledge_base_ids') e"
            "   WHERE e <> to_jsonb($2::text))), updated_at = now()"
            " WHERE org_id = $1 AND jsonb_typeof(config->'knowledge_base_ids') = 'array'"
            " AND config->'knowledge_base_ids' ? $2::text",
            org_id, str(kb_id),
        )
    return True


async def missing_ids(db: DB, org_id: UUID, kb_ids: Sequence[UUID]) -> list[UUID]:
    """Those of ``kb_ids`` that are not knowledge bases of this organization."""
    if not kb_ids:
        return []
    found = {r["id"] for r in await db.fetch(
        "SELECT id FROM knowledge_bases WHERE org_id = $1 AND id = ANY($2::uuid[])", org_id, list(kb_ids))}
    return [k for k in kb_ids if k not in found]


async def any_exist(db: DB) -> bool:
    """Whether any organization has a knowledge base (then the embedding model is worth loading early)."""
    return bool(await db.fetchval("SELECT EXISTS (SELECT 1 FROM knowledge_bases)"))


async def find_by_name(db: DB, org_id: UUID, name: str) -> dict[str, Any] | None:
    return row(await db.fetchrow(
        "SELECT * FROM knowledge_bases WHERE org_id = $1 AND name = $2 ORDER BY created_at LIMIT 1", org_id, name))


# -- ingestion ----------------------------------------------------------------------------------------------

async def start_source(db: DB, source_id: UUID) -> dict[str, Any] | None:
    """Mark a source in progress; None when it no longer exists."""
    return row(await db.fetchrow(
        "UPDATE knowledge_sources SET status = 'in_progress', updated_at = now() WHERE id = $1 RETURNING *",
        source_id))


async def source_done(db: DB, source_id: UUID, *, chunk_count: int, content_hash: str, title: str | None,
                      fetched: bool, refresh_hours: float | None) -> None:
    await db.execute(
        "UPDATE knowledge_sources s SET status = 'complete', error_message = NULL, chunk_count = $2,"
        " content_hash = $3, title = CASE WHEN $4::text IS NULL OR s.title <> '' THEN s.title ELSE $4 END,"
        " fetched_at = CASE WHEN $5 THEN now() ELSE s.fetched_at END,"
        " next_refresh_at = CASE WHEN $6::float8 IS NULL OR s.type <> 'url' THEN NULL"
        "   ELSE now() + make_interval(secs => $6::float8 * 3600) END,"
        " updated_at = now() WHERE id = $1",
        source_id, chunk_count, content_hash, title, fetched, refresh_hours,
    )


async def source_failed(db: DB, source_id: UUID, reason: str, *, refresh_hours: float | None) -> None:
    await db.execute(
        "UPDATE knowledge_sources s SET status = 'error', error_message = $2,"
        " next_refresh_at = CASE WHEN $3::float8 IS NULL OR s.type <> 'url' THEN NULL"
        "   ELSE now() + make_interval(secs => $3::float8 * 3600) END,"
        " updated_at = now() WHERE id = $1",
        source_id, reason[:1000], refresh_hours,
    )


async def refresh_status(db: DB, kb_id: UUID) -> dict[str, Any] | None:
    """Recompute a knowledge base's status from its sources: any pending → in_progress, else any failed →
    error (the reasons joined), else complete.

    The knowledge base row is locked first: two sources finishing at once each recompute, and without the
    lock the statement that commits last could carry a count taken before the other source finished."""
    async with transaction(db) as conn:
        await conn.execute("SELECT 1 FROM knowledge_bases WHERE id = $1 FOR UPDATE", kb_id)
        return await _recompute_status(conn, kb_id)


async def _recompute_status(db: DB, kb_id: UUID) -> dict[str, Any] | None:
    return row(await db.fetchrow(
        "WITH s AS (SELECT"
        "   count(*) FILTER (WHERE status IN ('pending', 'in_progress')) AS active,"
        "   string_agg(CASE WHEN status = 'error' THEN coalesce(nullif(url, ''), nullif(title, ''), id::text)"
        "              || ': ' || coalesce(error_message, 'failed') END, '; ' ORDER BY created_at) AS errors"
        "   FROM knowledge_sources WHERE kb_id = $1)"
        " UPDATE knowledge_bases kb SET"
        "   status = CASE WHEN s.active > 0 THEN 'in_progress' WHEN s.errors IS NOT NULL THEN 'error'"
        "            ELSE 'complete' END,"
        "   error_message = CASE WHEN s.active > 0 THEN NULL ELSE left(s.errors, 2000) END,"
        "   updated_at = now()"
        " FROM s WHERE kb.id = $1 RETURNING kb.*",
        kb_id,
    ))


async def unfinished_sources(db: DB) -> list[dict[str, Any]]:
    """Sources whose ingestion never finished (a new one, or one a stopped process left behind)."""
    return rows(await db.fetch(
        "SELECT id, org_id, kb_id FROM knowledge_sources WHERE status IN ('pending', 'in_progress')"
        " ORDER BY created_at"))


async def claim_due_refreshes(db: DB, *, refresh_hours: float, limit: int = 50) -> list[dict[str, Any]]:
    """URL sources of auto-refreshing knowledge bases whose refresh is due, claimed (their next refresh
    pushed back) so that several workers never refresh the same source twice."""
    return rows(await db.fetch(
        "UPDATE knowledge_sources SET next_refresh_at = now() + make_interval(secs => $1::float8 * 3600)"
        " WHERE id IN (SELECT s.id FROM knowledge_sources s JOIN knowledge_bases kb ON kb.id = s.kb_id"
        "   WHERE s.type = 'url' AND kb.enable_auto_refresh AND s.next_refresh_at <= now()"
        "   AND s.status NOT IN ('pending', 'in_progress')"
        "   ORDER BY s.next_refresh_at LIMIT $2 FOR UPDATE OF s SKIP LOCKED)"
        " RETURNING id, org_id, kb_id",
        refresh_hours, limit,
    ))

