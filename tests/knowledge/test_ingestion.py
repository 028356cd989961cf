"""Ingestion into chromadb with real embeddings, queries, thresholds, deletion, URL sources, refresh."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agents.knowledge.service import KnowledgeService
from store import knowledge as kb_store
from tests.knowledge.conftest import make_service

TEXTS = [
    {"title": "Opening hours", "text": "The Lisbon office is open from nine in the morning to six in the evening, "
                                       "Monday to Friday. On Saturdays it opens from ten to one."},
    {"title": "Parking", "text": "Visitors can park for free in the underground garage on Rua Augusta. "
                                 "Ask the front desk for a parking ticket."},
    {"title": "Refunds", "text": "Refunds are paid back to the original card within five working days. "
                                 "Orders older than thirty days cannot be refunded."},
]


async def create(db, service: KnowledgeService, org: Any, texts: list[dict[str, str]] | None = None,
                 urls: list[str] | None = None, *, auto_refresh: bool = False) -> tuple[dict, list[dict]]:
    kb, sources = await kb_store.create(db, org, "Help desk", auto_refresh=auto_refresh, texts=texts or [],
                                        urls=urls or [])
    for s in sources:
        service.schedule(org, kb["id"], s["id"])
    await asyncio.wait_for(service.idle(), 60)
    return kb, sources


async def kb_row(db, org: Any, kb_id: Any) -> tuple[dict, list[dict]]:
    kb = await kb_store.knowledge_bases.get(db, org, kb_id)
    return kb, (await kb_store.sources_of(db, org, [kb_id]))[kb_id]


async def test_texts_are_ingested_and_queries_score_by_cosine_similarity(db, service, org) -> None:
    kb, sources = await create(db, service, org, TEXTS)
    kb, rows = await kb_row(db, org, kb["id"])
    assert kb["status"] == "complete" and kb["error_message"] is None
    assert [r["status"] for r in rows] == ["complete"] * 3 and all(r["chunk_count"] == 1 for r in rows)
    assert service.vectors.count(org, kb["id"]) == 3

    hits = await service.search(org, [kb["id"]], "when is the office open on saturday?", top_k=3)
    assert [h.match.source_id for h in hits][0] == sources[0]["id"]
    scores = [h.match.similarity for h in hits]
    assert scores == sorted(scores, reverse=True) and len(hits) == 3
    assert scores[0] > 0.5 and scores[-1] < 0.3 and all(-1 <= s <= 1 for s in scores)
    # the score is the cosine similarity of the query and the chunk (as embedded, with its title)
    q, c = await service.embed(["when is the office open on saturday?", f"Opening hours: {hits[0].match.text}"])
    assert abs(float(q @ c) - scores[0]) < 1e-3


async def test_threshold_and_top_k(db, service, org) -> None:
    kb, _ = await create(db, service, org, TEXTS)
    assert len(await service.search(org, [kb["id"]], "how do I get my money back", top_k=1)) == 1
    above = await service.search(org, [kb["id"]], "how do I get my money back", top_k=5, threshold=0.4)
    assert [h.match.text.split()[0] for h in above] == ["Refunds"]
    assert await service.search(org, [kb["id"]], "how do I get my money back", threshold=0.99) == []
    assert await service.search(org, [kb["id"]], "   ") == []


async def test_another_organization_never_sees_the_chunks(db, service, org, other_org) -> None:
    kb, _ = await create(db, service, org, TEXTS)
    assert await service.search(other_org, [kb["id"]], "parking") == []
    assert service.vectors.count(other_org, kb["id"]) == 0
    assert service.vectors.count(org, kb["id"]) == 3


async def test_deleting_a_source_removes_its_chunks(db, service, org) -> None:
    kb, sources = await create(db, service, org, TEXTS)
    parking = sources[1]["id"]
    assert service.vectors.count(org, kb["id"], parking) == 1
    assert await kb_store.delete_source(db, org, kb["id"], parking)
    await service.forget_source(org, kb["id"], parking)
    assert service.vectors.count(org, kb["id"], parking) == 0 and service.vectors.count(org, kb["id"]) == 2
    hits = await service.search(org, [kb["id"]], "where can I park my car", top_k=5)
    assert parking not in {h.match.source_id for h in hits}


async def test_deleting_a_source_while_it_is_ingested_leaves_nothing(db, service, org) -> None:
    kb, sources = await kb_store.create(db, org, "Big", auto_refresh=False, urls=[],
                                        texts=[{"title": "", "text": " ".join(["A long sentence about refunds."] * 3000)}])
    source_id = sources[0]["id"]
    service.schedule(org, kb["id"], source_id)
    await asyncio.sleep(0.3)  # chunking and embedding are under way
    assert await kb_store.delete_source(db, org, kb["id"], source_id)
    await service.forget_source(org, kb["id"], source_id)
    await asyncio.wait_for(service.idle(), 60)
    await asyncio.sleep(0.2)
    assert service.vectors.count(org, kb["id"], source_id) == 0
    kb_after, rows = await kb_row(db, org, kb["id"])
    assert rows == [] and kb_after["status"] == "complete"


async def test_deleting_the_knowledge_base_drops_its_collection(db, service, org) -> None:
    kb, _ = await create(db, service, org, TEXTS)
    assert await kb_store.delete(db, org, kb["id"])
    await service.forget_kb(org, kb["id"])
    assert service.vectors.count(org, kb["id"]) == 0
    assert await service.search(org, [kb["id"]], "parking") == []


async def test_a_text_without_words_is_an_error_with_its_reason(db, service, org) -> None:
    kb, _ = await create(db, service, org, [TEXTS[0], {"title": "Rule", "text": "---- **** ----"}])
    kb, rows = await kb_row(db, org, kb["id"])
    assert [r["status"] for r in rows] == ["complete", "error"]
    assert rows[1]["error_message"] == "the source has no text to index"
    assert kb["status"] == "error" and kb["error_message"] == "Rule: the source has no text to index"
    assert service.vectors.count(org, kb["id"]) == 1  # the good source is still searchable


async def test_url_sources_private_refused_by_default_with_the_reason(db, service, org, site) -> None:
    url = site.html("/hours", "Opening hours", TEXTS[0]["text"])
    kb, _ = await create(db, service, org, urls=[url])
    kb, rows = await kb_row(db, org, kb["id"])
    assert kb["status"] == "error" and rows[0]["status"] == "error"
    assert "loopback address 127.0.0.1" in rows[0]["error_message"]
    assert kb["error_message"].startswith(f"{url}: 127.0.0.1 is a loopback address")
    assert site.hits == []


async def test_url_sources_are_fetched_when_the_operator_allows_private_addresses(db, vectors, org, site,
                                                                                 embedder) -> None:
    service = make_service(db, vectors, allow_private_urls=True)
    await service.start()
    try:
        url = site.html("/hours", "Opening hours", TEXTS[0]["text"])
        kb, _ = await create(db, service, org, urls=[url])
        kb, rows = await kb_row(db, org, kb["id"])
        assert kb["status"] == "complete", kb
        assert rows[0]["title"] == "Opening hours" and rows[0]["chunk_count"] == 1 and rows[0]["fetched_at"]
        hits = await service.search(org, [kb["id"]], "is the office open on saturday", top_k=1)
        assert "Saturdays" in hits[0].match.text
    finally:
        await service.stop()


async def test_auto_refresh_refetches_due_url_sources(db, vectors, org, site, embedder) -> None:
    service = make_service(db, vectors, allow_private_urls=True, refresh_hours=0.0)  # always due at once
    await service.start()
    try:
        url = site.html("/news", "News", "The cafeteria serves pasta on Mondays.")
        kb, sources = await create(db, service, org, urls=[url], auto_refresh=True)
        first = (await service.search(org, [kb["id"]], "what is served on monday", top_k=1))[0]
        assert "pasta" in first.match.text

        assert await service.refresh_due() == 1  # unchanged page: fetched again, not embedded again
        await asyncio.wait_for(service.idle(), 30)
        assert site.hits.count("/news") == 2

        site.html("/news", "News", "The cafeteria serves grilled fish on Mondays.")
        assert await service.refresh_due() == 1
        await asyncio.wait_for(service.idle(), 30)
        hits = await service.search(org, [kb["id"]], "what is served on monday", top_k=5)
        assert len(hits) == 1 and "grilled fish" in hits[0].match.text and "pasta" not in hits[0].match.text
        kb_after, rows = await kb_row(db, org, kb["id"])
        assert kb_after["status"] == "complete" and rows[0]["chunk_count"] == 1
    finally:
        await service.stop()


async def test_knowledge_bases_without_auto_refresh_are_not_refetched(db, vectors, org, site, embedder) -> None:
    service = make_service(db, vectors, allow_private_urls=True, refresh_hours=0.0)
    await service.start()
    try:
        await create(db, service, org, urls=[site.html("/a", "A", TEXTS[1]["text"])], auto_refresh=False)
        assert await service.refresh_due() == 0
    finally:
        await service.stop()


async def test_unfinished_sources_are_resumed_at_start(db, vectors, org, embedder) -> None:
    kb, _ = await kb_store.create(db, org, "Left over", auto_refresh=False, texts=TEXTS, urls=[])
    service = make_service(db, vectors)
    await service.start()  # finds the pending sources itself
    try:
        await asyncio.wait_for(service.idle(), 60)
        kb_after, _ = await kb_row(db, org, kb["id"])
        assert kb_after["status"] == "complete" and vectors.count(org, kb["id"]) == 3
    finally:
        await service.stop()


@pytest.mark.parametrize("n_paragraphs", [40])
async def test_a_long_text_is_chunked_and_every_chunk_is_stored(db, service, org, n_paragraphs: int) -> None:
    text = "\n\n".join(f"Section {i}. " + " ".join(f"Item {i}.{j} costs {j} euros." for j in range(12))
                       for i in range(n_paragraphs))
    kb, sources = await create(db, service, org, [{"title": "Price list", "text": text}])
    _, rows = await kb_row(db, org, kb["id"])
    assert rows[0]["chunk_count"] == service.vectors.count(org, kb["id"]) >= n_paragraphs
