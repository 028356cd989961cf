"""Knowledge bases: text and URL sources ingested in the background, semantic queries, deletion."""

from __future__ import annotations

import logging
import time
from typing import Any

from aiohttp import web

from agents.knowledge.service import KnowledgeService
from api import errors
from api.keys import POOL
from api.models.knowledge import (
    KnowledgeBaseCreate,
    KnowledgeBaseOut,
    KnowledgeBaseQuery,
    SearchOut,
    SearchRequest,
    SourcesAdd,
)
from api.routing import Ctx, Result
from store import knowledge as kb_store
from store.types import Where

from . import registry

log = logging.getLogger(__name__)

KNOWLEDGE = web.AppKey("knowledge", KnowledgeService)
TAG = "Knowledge bases"


def present(kb: dict[str, Any], sources: list[dict[str, Any]]) -> dict[str, Any]:
    data = {
        "id": kb["id"], "knowledge_base_id": kb["id"], "knowledge_base_name": kb["name"], "status": kb["status"],
        "error_message": kb["error_message"], "enable_auto_refresh": kb["enable_auto_refresh"],
        "chunk_count": sum(s["chunk_count"] for s in sources),
        "knowledge_base_sources": [{**s, "source_id": s["id"]} for s in sources],
        "created_at": kb["created_at"], "updated_at": kb["updated_at"],
    }
    return KnowledgeBaseOut.model_validate(data).model_dump(mode="json")


async def _present_one(ctx: Ctx, kb: dict[str, Any]) -> dict[str, Any]:
    sources = await kb_store.sources_of(ctx.app[POOL], ctx.org_id, [kb["id"]])
    return present(kb, sources[kb["id"]])


async def load_kb(ctx: Ctx) -> dict[str, Any]:
    record = await kb_store.knowledge_bases.get(ctx.app[POOL], ctx.org_id, ctx.ids["knowledge_base_id"])
    if record is None:
        raise errors.NotFound("No knowledge base with that id.")
    return record


def _schedule(ctx: Ctx, sources: list[dict[str, Any]]) -> None:
    service = ctx.app[KNOWLEDGE]
    for source in sources:
        service.schedule(ctx.org_id, source["kb_id"], source["id"])


@registry.route("POST", "/knowledge-bases", summary="Create a knowledge base (ingested in the background)", tag=TAG,
                body=KnowledgeBaseCreate, response=KnowledgeBaseOut, status=201)
async def create_knowledge_base(ctx: Ctx) -> Result:
    body: KnowledgeBaseCreate = ctx.body
    kb, sources = await kb_store.create(
        ctx.app[POOL], ctx.org_id, body.knowledge_base_name, auto_refresh=body.enable_auto_refresh,
        texts=[t.model_dump() for t in body.knowledge_base_texts], urls=body.knowledge_base_urls,
    )
    _schedule(ctx, sources)
    return Result(present(kb, sources), status=201)


@registry.route("GET", "/knowledge-bases", summary="List knowledge bases", tag=TAG, query=KnowledgeBaseQuery,
                response=KnowledgeBaseOut, many=True)
async def list_knowledge_bases(ctx: Ctx) -> Result:
    q: KnowledgeBaseQuery = ctx.query
    where = Where()
    if q.status is not None:
        where.add("status = {}", q.status)
    items, total = await kb_store.knowledge_bases.list(ctx.app[POOL], ctx.org_id, where, q.limit, q.offset)
    sources = await kb_store.sources_of(ctx.app[POOL], ctx.org_id, [kb["id"] for kb in items])
    return Result([present(kb, sources[kb["id"]]) for kb in items], total=total, limit=q.limit, offset=q.offset)


@registry.route("GET", "/knowledge-bases/{knowledge_base_id}", summary="Get a knowledge base with its sources",
                tag=TAG, response=KnowledgeBaseOut, errors=(404,))
async def get_knowledge_base(ctx: Ctx) -> Result:
    return Result(await _present_one(ctx, await load_kb(ctx)))


@registry.route("DELETE", "/knowledge-bases/{knowledge_base_id}",
                summary="Delete a knowledge base, its sources and chunks (agents using it are detached)", tag=TAG,
                status=204, errors=(404,))
async def delete_knowledge_base(ctx: Ctx) -> None:
    kb_id = ctx.ids["knowledge_base_id"]
    if not await kb_store.delete(ctx.app[POOL], ctx.org_id, kb_id):
        raise errors.NotFound("No knowledge base with that id.")
    await ctx.app[KNOWLEDGE].forget_kb(ctx.org_id, kb_id)


@registry.route("POST", "/knowledge-bases/{knowledge_base_id}/sources", summary="Add text or URL sources", tag=TAG,
                body=SourcesAdd, response=KnowledgeBaseOut, status=201, errors=(404,))
async def add_sources(ctx: Ctx) -> Result:
    body: SourcesAdd = ctx.body
    kb = await load_kb(ctx)
    sources = await kb_store.add_sources(ctx.app[POOL], ctx.org_id, kb["id"],
                                         [t.model_dump() for t in body.knowledge_base_texts], body.knowledge_base_urls)
    _schedule(ctx, sources)
    return Result(await _present_one(ctx, await load_kb(ctx)), status=201)


@registry.route("DELETE", "/knowledge-bases/{knowledge_base_id}/sources/{source_id}",
                summary="Delete a source and its chunks", tag=TAG, status=204, errors=(404,))
async def delete_source(ctx: Ctx) -> None:
    kb_id, source_id = ctx.ids["knowledge_base_id"], ctx.ids["source_id"]
    if not await kb_store.delete_source(ctx.app[POOL], ctx.org_id, kb_id, source_id):
        raise errors.NotFound("No source with that id in this knowledge base.")
    await ctx.app[KNOWLEDGE].forget_source(ctx.org_id, kb_id, source_id)


@registry.route("POST", "/knowledge-bases/{knowledge_base_id}/query",
                summary="Semantic search: the chunks most similar to the query (cosine similarity)", tag=TAG,
                body=SearchRequest, response=SearchOut, errors=(404, 503))
async def query_knowledge_base(ctx: Ctx) -> Result:
    body: SearchRequest = ctx.body
    kb = await load_kb(ctx)
    t0 = time.perf_counter()
    try:
        hits = await ctx.app[KNOWLEDGE].search(ctx.org_id, [kb["id"]], body.query, top_k=body.top_k,
                                               threshold=body.threshold)
    except Exception as exc:
        log.exception("knowledge base %s: query failed", kb["id"])
        raise errors.Unavailable(f"The vector store is unavailable: {exc.__class__.__name__}.") from exc
    elapsed = (time.perf_counter() - t0) * 1000.0
    sources = await kb_store.source_titles(ctx.app[POOL], ctx.org_id, list({h.match.source_id for h in hits}))
    results: list[dict[str, Any]] = []
    for hit in hits:
        source = sources.get(hit.match.source_id)
        if source is None:
            continue  # its source was deleted a moment ago
        results.append({
            "chunk_id": hit.match.chunk_id, "text": hit.match.text, "similarity": hit.match.similarity,
            "chunk_index": hit.match.chunk_index,
            "source": {"source_id": source["id"], "type": source["type"], "title": source["title"],
                       "url": source["url"]},
        })
    context = "\n\n".join(
        (f"[{r['source']['title'] or r['source']['url']}]\n" if (r["source"]["title"] or r["source"]["url"]) else "")
        + r["text"] for r in results
    )
    data = {"knowledge_base_id": kb["id"], "query": body.query, "results": results, "context_text": context,
            "retrieval_ms": round(elapsed, 2)}
    return Result(SearchOut.model_validate(data).model_dump(mode="json"))
