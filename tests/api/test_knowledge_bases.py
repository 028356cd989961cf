"""Knowledge bases through the API: create, ingest in the background, query, sources, deletion, tenancy."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from typing import Any

import pytest
from aiohttp import web

from agents.knowledge.embedder import EmbeddingProcess, embedding_process
from switchboard.server import init_app
from tests.api.conftest import Tenant

TEXTS = [
    {"title": "Opening hours", "text": "The Lisbon office is open from nine in the morning to six in the evening, "
                                       "Monday to Friday. On Saturdays it opens from ten to one."},
    {"title": "Parking", "text": "Visitors can park for free in the underground garage on Rua Augusta. "
                                 "Ask the front desk for a parking ticket."},
]


@pytest.fixture(scope="session")
def embedder() -> EmbeddingProcess:
    e = embedding_process()
    e.load_blocking()  # once per session (~5-10 s)
    return e


async def wait_done(tenant, kb_id: str, limit_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + limit_s
    while True:
        _, body = await tenant.get(f"/knowledge-bases/{kb_id}", expect=200)
        if body["data"]["status"] != "in_progress":
            return body["data"]
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.05)


async def create_kb(tenant, **fields: Any) -> dict[str, Any]:
    _, body = await tenant.post("/knowledge-bases", {"knowledge_base_name": "Help desk", **fields}, expect=201)
    return body["data"]


async def test_create_ingest_and_query(tenant, embedder) -> None:
    kb = await create_kb(tenant, knowledge_base_texts=TEXTS)
    assert kb["status"] == "in_progress" and kb["knowledge_base_name"] == "Help desk"
    assert kb["knowledge_base_id"] == kb["id"] and kb["enable_auto_refresh"] is False
    assert [s["title"] for s in kb["knowledge_base_sources"]] == ["Opening hours", "Parking"]
    assert all(s["type"] == "text" and s["status"] == "pending" for s in kb["knowledge_base_sources"])

    kb = await wait_done(tenant, kb["id"])
    assert kb["status"] == "complete" and kb["error_message"] is None and kb["chunk_count"] == 2
    assert all(s["status"] == "complete" and s["chunk_count"] == 1 for s in kb["knowledge_base_sources"])

    _, body = await tenant.post(f"/knowledge-bases/{kb['id']}/query",
                                {"query": "where can visitors park?", "threshold": 0.0}, expect=200)
    data = body["data"]
    assert len(data["results"]) == 2 and data["retrieval_ms"] > 0
    best = data["results"][0]
    assert best["source"]["title"] == "Parking" and best["source"]["type"] == "text"
    assert best["source"]["source_id"] == kb["knowledge_base_sources"][1]["source_id"]
    assert best["text"].startswith("Visitors can park") and best["similarity"] > 0.5
    assert data["results"][0]["similarity"] >= data["results"][1]["similarity"]
    assert data["context_text"].startswith("[Parking]\nVisitors can park")

    # the default threshold (0.7) is strict; top_k bounds the list
    _, body = await tenant.post(f"/knowledge-bases/{kb['id']}/query", {"query": "where can visitors park?"},
                                expect=200)
    assert all(r["similarity"] >= 0.7 for r in body["data"]["results"])
    _, body = await tenant.post(f"/knowledge-bases/{kb['id']}/query",
                                {"query": "where can visitors park?", "threshold": 0, "top_k": 1}, expect=200)
    assert len(body["data"]["results"]) == 1
    _, body = await tenant.post(f"/knowledge-bases/{kb['id']}/query",
                                {"query": "where can visitors park?", "threshold": 0.99}, expect=200)
    assert body["data"]["results"] == [] and body["data"]["context_text"] == ""


async def test_list_and_filter(tenant, embedder) -> None:
    first = await create_kb(tenant, knowledge_base_texts=TEXTS[:1])
    second = await create_kb(tenant, knowledge_base_name="Empty")
    assert second["status"] == "complete" and second["knowledge_base_sources"] == []
    await wait_done(tenant, first["id"])
    _, body = await tenant.get("/knowledge-bases", expect=200)
    assert [k["id"] for k in body["data"]] == [second["id"], first["id"]] and body["meta"]["total"] == 2
    assert body["data"][1]["knowledge_base_sources"][0]["title"] == "Opening hours"
    _, body = await tenant.get("/knowledge-bases?status=error", expect=200)
    assert body["data"] == [] and body["meta"]["total"] == 0


@pytest.mark.parametrize(("payload", "field"), [
    ({}, "knowledge_base_name"),
    ({"knowledge_base_name": "x" * 41}, "knowledge_base_name"),
    ({"knowledge_base_name": "   "}, "knowledge_base_name"),
    ({"knowledge_base_name": "ok", "knowledge_base_urls": ["ftp://example.com/a"]}, "knowledge_base_urls.0"),
    ({"knowledge_base_name": "ok", "knowledge_base_texts": [{"title": "t"}]}, "knowledge_base_texts.0.text"),
    ({"knowledge_base_name": "ok", "knowledge_base_texts": [{"text": ""}]}, "knowledge_base_texts.0.text"),
    ({"knowledge_base_name": "ok", "surprise": 1}, "surprise"),
])
async def test_create_validation(tenant, payload: dict[str, Any], field: str) -> None:
    status, body = await tenant.post("/knowledge-bases", payload)
    assert status == 422 and field in body["error"]["fields"], body


async def test_add_sources_and_delete_one(tenant, embedder) -> None:
    kb = await create_kb(tenant, knowledge_base_texts=TEXTS[:1])
    await wait_done(tenant, kb["id"])
    _, body = await tenant.post(f"/knowledge-bases/{kb['id']}/sources", {"knowledge_base_texts": TEXTS[1:]},
                                expect=201)
    assert body["data"]["status"] == "in_progress" and len(body["data"]["knowledge_base_sources"]) == 2
    kb = await wait_done(tenant, kb["id"])
    assert kb["status"] == "complete" and kb["chunk_count"] == 2
    parking = kb["knowledge_base_sources"][1]["source_id"]

    await tenant.delete(f"/knowledge-bases/{kb['id']}/sources/{parking}", expect=204)
    kb = (await tenant.get(f"/knowledge-bases/{kb['id']}", expect=200))[1]["data"]
    assert [s["title"] for s in kb["knowledge_base_sources"]] == ["Opening hours"] and kb["chunk_count"] == 1
    _, body = await tenant.post(f"/knowledge-bases/{kb['id']}/query", {"query": "parking garage", "threshold": 0},
                                expect=200)
    assert {r["source"]["source_id"] for r in body["data"]["results"]} == {kb["knowledge_base_sources"][0]["source_id"]}
    await tenant.delete(f"/knowledge-bases/{kb['id']}/sources/{parking}", expect=404)
    await tenant.post(f"/knowledge-bases/{kb['id']}/sources", {}, expect=422)


async def test_url_to_loopback_ends_in_error_with_the_reason(tenant, embedder) -> None:
    kb = await create_kb(tenant, knowledge_base_urls=["http://127.0.0.1:9/private"])
    kb = await wait_done(tenant, kb["id"])
    assert kb["status"] == "error"
    source = kb["knowledge_base_sources"][0]
    assert source["type"] == "url" and source["status"] == "error" and source["url"] == "http://127.0.0.1:9/private"
    assert "loopback address" in source["error_message"] and "loopback address" in kb["error_message"]


async def test_url_sources_with_the_operator_flag(tenant, settings, tmp_path, embedder, monkeypatch,
                                                 aiohttp_server, aiohttp_client) -> None:
    async def article(request: web.Request) -> web.Response:
        return web.Response(content_type="text/html", text="<html><head><title>Hours</title></head><body><article>"
                            f"<p>{TEXTS[0]['text']}</p></article></body></html>")

    page = web.Application()
    page.router.add_get("/hours", article)
    server = await aiohttp_server(page)
    # the flag is read when the knowledge service starts: a server started with it
    monkeypatch.setenv("SWITCHBOARD_ALLOW_PRIVATE_URLS", "1")
    app = init_app(dataclasses.replace(settings, data_dir=tmp_path / "flagged"), settings.database_url,
                   bootstrap=False)
    flagged = Tenant(await aiohttp_client(app), tenant.key, tenant.org_id)

    kb = await create_kb(flagged, knowledge_base_urls=[str(server.make_url("/hours"))])
    kb = await wait_done(flagged, kb["id"])
    assert kb["status"] == "complete", kb
    source = kb["knowledge_base_sources"][0]
    assert source["title"] == "Hours" and source["fetched_at"] and source["chunk_count"] == 1
    _, body = await flagged.post(f"/knowledge-bases/{kb['id']}/query",
                                 {"query": "is it open on saturday", "threshold": 0.3}, expect=200)
    assert "Saturdays" in body["data"]["results"][0]["text"]


async def test_delete_knowledge_base_detaches_agents(tenant, embedder) -> None:
    kb = await create_kb(tenant, knowledge_base_texts=TEXTS)
    _, body = await tenant.post("/agents", {"name": "Desk", "knowledge_base_ids": [kb["id"]]}, expect=201)
    agent = body["data"]
    assert agent["knowledge_base_ids"] == [kb["id"]]
    await tenant.delete(f"/knowledge-bases/{kb['id']}", expect=204)
    await tenant.get(f"/knowledge-bases/{kb['id']}", expect=404)
    await tenant.post(f"/knowledge-bases/{kb['id']}/query", {"query": "parking"}, expect=404)
    await tenant.delete(f"/knowledge-bases/{kb['id']}", expect=404)
    _, body = await tenant.get(f"/agents/{agent['id']}", expect=200)
    assert body["data"]["knowledge_base_ids"] == []


async def test_agents_may_only_name_their_own_knowledge_bases(tenant, other) -> None:
    mine = await create_kb(tenant, knowledge_base_name="Mine")
    theirs = await create_kb(other, knowledge_base_name="Theirs")
    status, body = await tenant.post("/agents", {"name": "A", "knowledge_base_ids": [mine["id"], theirs["id"]]})
    assert status == 422 and body["error"]["fields"] == {"knowledge_base_ids.1": ["No knowledge base with this id."]}
    status, body = await tenant.post("/agents", {"name": "A", "knowledge_base_ids": [str(uuid.uuid4())]})
    assert status == 422 and "knowledge_base_ids.0" in body["error"]["fields"]
    _, body = await tenant.post("/agents", {"name": "A", "knowledge_base_ids": [mine["id"]]}, expect=201)
    agent_id = body["data"]["id"]
    status, _ = await tenant.patch(f"/agents/{agent_id}", {"knowledge_base_ids": [theirs["id"]]})
    assert status == 422
    await tenant.patch(f"/agents/{agent_id}", {"knowledge_base_ids": []}, expect=200)


async def test_another_tenant_gets_404_everywhere(tenant, other, embedder) -> None:
    kb = await create_kb(tenant, knowledge_base_texts=TEXTS)
    kb = await wait_done(tenant, kb["id"])
    source_id = kb["knowledge_base_sources"][0]["source_id"]
    base = f"/knowledge-bases/{kb['id']}"
    assert (await other.get(base))[0] == 404
    assert (await other.post(f"{base}/query", {"query": "parking"}))[0] == 404
    assert (await other.post(f"{base}/sources", {"knowledge_base_texts": TEXTS}))[0] == 404
    assert (await other.delete(f"{base}/sources/{source_id}"))[0] == 404
    assert (await other.delete(base))[0] == 404
    _, body = await other.get("/knowledge-bases", expect=200)
    assert body["data"] == []
    # and the owner still has all of it
    kb = (await tenant.get(base, expect=200))[1]["data"]
    assert kb["chunk_count"] == 2 and len(kb["knowledge_base_sources"]) == 2
    # a source id of one knowledge base does not name a source of another
    other_kb = await create_kb(tenant, knowledge_base_name="Other")
    await tenant.delete(f"/knowledge-bases/{other_kb['id']}/sources/{source_id}", expect=404)


async def test_malformed_ids_are_404(tenant) -> None:
    await tenant.get("/knowledge-bases/not-a-uuid", expect=404)
    await tenant.post("/knowledge-bases/not-a-uuid/query", {"query": "x"}, expect=404)
