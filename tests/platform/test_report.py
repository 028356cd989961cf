"""Post-call reports: computed when a call ends, by the agent's LLM (the OpenAI protocol server) or
locally, stored, served at GET /calls/{id}/report and delivered as the call_analyzed webhook."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from agents.report import extractive_summary, parse_answer
from store import outbox
from tests.agents.fake_openai import Fail, FakeOpenAI, Reply
from tests.platform.conftest import Receiver, Seed, api, seed

METRICS = {"duration_seconds": 42.5, "turns": 2, "interruptions": 1, "total_tokens": 30,
           "voice_to_voice_ms": {"p50": 850.0, "p90": 1200.0}, "llm_latency_ms": {"p50": 300.0, "p90": 420.0},
           "stt_latency_ms": {"p50": 120.0, "p90": 150.0}, "tts_latency_ms": {"p50": 200.0, "p90": 260.0},
           "per_turn": [{"stt_latency_ms": 120.0, "llm_latency_ms": 300.0, "tts_latency_ms": 200.0,
                         "voice_to_voice_ms": 850.0, "retrieval_ms": None, "tokens": 15}]}
TURNS = [("agent", "Hello, this is Riverton Bistro. How can I help?", False),
         ("user", "I would like to book a table for four people tomorrow evening.", False),
         ("agent", "Certainly, a table for four tomorrow at seven. Can I have", True),
         ("user", "Yes seven is perfect, the name is Alex.", False),
         ("agent", "Thank you Alex, your table for four is booked for tomorrow at seven.", False)]


@pytest.fixture
async def fake_llm() -> AsyncIterator[FakeOpenAI]:
    server = await FakeOpenAI().start()
    yield server
    await server.stop()


async def _ended_call(db: asyncpg.Pool, org: Seed) -> dict[str, Any]:
    now = datetime.now(UTC)
    call = await org.call(db, status="completed", answered_at=now - timedelta(seconds=42.5), ended_at=now,
                          metrics=METRICS, hangup_cause="NORMAL_CLEARING", disconnection_reason="user_hangup")
    for role, content, interrupted in TURNS:
        await db.execute("INSERT INTO transcript_turns (call_id, role, content, interrupted) VALUES ($1, $2, $3, $4)",
                         call["id"], role, content, interrupted)
    async with db.acquire() as conn, conn.transaction():
        await outbox.append(conn, org.org_id, call["id"], "call_status", {
            "call_id": str(call["id"]), "status": "completed", "previous_status": "in_progress",
            "hangup_cause": "NORMAL_CLEARING", "disconnection_reason": "user_hangup"})
    return call


async def _report(client: TestClient, key: str, call_id: Any) -> dict[str, Any]:
    async with asyncio.timeout(20):
        while True:
            _, body = await api(client, key, "GET", f"/calls/{call_id}/report", expect=200)
            if body["data"]["status"] == "done":
                return body["data"]["report"]
            await asyncio.sleep(0.05)  # polling the API for the state the test waits for


async def test_local_report_without_an_llm_and_the_call_analyzed_webhook(db, client: TestClient, platform,
                                                                          receiver: Receiver) -> None:
    org = await seed(db, agent_config={"post_call_webhook_url": receiver.url + "/post"})
    live = await org.call(db, status="in_progress")
    await api(client, org.key, "GET", f"/calls/{live['id']}/report", expect=409)
    call = await _ended_call(db, org)
    await platform()
    report = await _report(client, org.key, call["id"])
    assert report["generated_by"] == "local" and report["model"] is None
    assert report["conversation"] == {"turns": 5, "user_turns": 2, "agent_turns": 3, "tool_turns": 0,
                                      "interruptions": 1, "user_words": 20, "agent_words": 33}
    assert report["call"]["duration_seconds"] == 42.5 and report["call"]["hangup_cause"] == "NORMAL_CLEARING"
    assert report["latency"]["voice_to_voice_ms"] == {"p50": 850.0, "p90": 1200.0}
    assert "table for four" in report["summary"] and report["sentiment"] is None
    got = await receiver.wait_for(lambda r: any(x.path == "/post" for x in r))
    analyzed = next(r for r in got if r.path == "/post").json
    assert analyzed["event"] == "call_analyzed"
    data = analyzed["data"]
    assert [t["content"] for t in data["transcript"]] == [t[1] for t in TURNS]
    assert data["report"]["summary"] == report["summary"] and data["metrics"]["turns"] == 2
    assert data["call"]["call_id"] == str(call["id"]) and "recording_url" in data and "cost" in data
    # exactly one report and one call_analyzed, however many end events the call had
    async with db.acquire() as conn, conn.transaction():
        await outbox.append(conn, org.org_id, call["id"], "call_completed", {"call_id": str(call["id"])})
    async with asyncio.timeout(10):
        while await db.fetchval("SELECT count(*) FROM outbox WHERE dispatched_at IS NULL"):  # noqa: ASYNC110
            await asyncio.sleep(0.05)  # until the dispatcher has handled it
    assert await db.fetchval("SELECT count(*) FROM outbox WHERE event = 'call_analyzed'") == 1
    assert len([r for r in receiver.received if r.path == "/post"]) == 1  # no status URL: call_completed not sent


async def test_llm_report_with_typed_custom_fields(db, client: TestClient, platform, fake_llm: FakeOpenAI) -> None:
    org = await seed(db, agent_config={
        "response_engine": {"type": "llm", "base_url": fake_llm.base_url, "llm_model": "gpt-test"},
        "post_call_analysis": {"custom_fields": [
            {"name": "party_size", "type": "integer", "description": "How many people the table is for"},
            {"name": "outcome", "type": "enum", "choices": ["booked", "declined"], "description": "Result"},
            {"name": "wants_callback", "type": "boolean", "description": "Asked to be called back"},
            {"name": "allergy", "type": "string", "description": "Any allergy mentioned"}],
            "instructions": "A call succeeds when a table is booked."}})
    fake_llm.script = [Reply(['Here you go: {"summary": "Alex booked a table for four.", "sentiment": "POSITIVE", ',
                              '"call_successful": true, "party_size": "4", "outcome": "booked", ',
                              '"wants_callback": "no", "allergy": null}'])]
    call = await _ended_call(db, org)
    await platform()
    report = await _report(client, org.key, call["id"])
    assert report["generated_by"] == "llm" and report["model"] == "gpt-test", report
    assert report["summary"] == "Alex booked a table for four." and report["sentiment"] == "positive"
    assert report["call_successful"] is True
    assert report["custom_fields"] == {"party_size": 4, "outcome": "booked", "wants_callback": False, "allergy": None}
    assert report["conversation"]["turns"] == 5  # the local figures stay
    request = fake_llm.requests[0]
    assert request["model"] == "gpt-test" and request["stream"] is True
    system = request["messages"][0]["content"]
    assert "party_size" in system and '"booked"' in system and "A call succeeds when a table is booked." in system
    assert "Caller: I would like to book a table" in request["messages"][1]["content"]


async def test_llm_failure_keeps_the_local_report(db, client: TestClient, platform, fake_llm: FakeOpenAI) -> None:
    org = await seed(db, agent_config={"response_engine": {"type": "llm", "base_url": fake_llm.base_url}})
    fake_llm.script = [Fail(500, "upstream down")]
    call = await _ended_call(db, org)
    await platform()
    report = await _report(client, org.key, call["id"])
    assert report["generated_by"] == "local" and "upstream down" in report["llm_error"]
    assert report["summary"]


async def test_agent_api_takes_post_call_analysis(db, client: TestClient) -> None:
    org = await seed(db)
    analysis = {"summary": False, "custom_fields": [{"name": "reason", "description": "Why they called"}]}
    _, made = await api(client, org.key, "POST", "/agents", json={"name": "A", "post_call_analysis": analysis},
                        expect=201)
    assert made["data"]["post_call_analysis"]["custom_fields"][0]["type"] == "string"
    assert made["data"]["post_call_analysis"]["summary"] is False
    _, bad = await api(client, org.key, "POST", "/agents", json={
        "name": "B", "post_call_analysis": {"custom_fields": [{"name": "x", "type": "enum", "description": "d"}]}},
        expect=422)
    assert "post_call_analysis.custom_fields.0" in json.dumps(bad["error"]["fields"])
    _, plain = await api(client, org.key, "POST", "/agents", json={"name": "C"}, expect=201)
    assert plain["data"]["post_call_analysis"] is None


def test_extractive_summary_and_answer_parsing() -> None:
    turns = [{"role": r, "content": c} for r, c, _ in TURNS]
    summary = extractive_summary(turns, max_sentences=2)
    assert summary.count(":") >= 2 and "table" in summary
    assert extractive_summary([]) == ""
    analysis = {"summary": True, "sentiment": True, "call_successful": True,
                "custom_fields": [{"name": "n", "type": "number", "description": ""}]}
    parsed = parse_answer('{"summary": 3, "sentiment": "angry", "call_successful": "maybe", "n": "2.5"}', analysis)
    assert parsed == {"summary": "3", "sentiment": None, "call_successful": None, "custom_fields": {"n": 2.5}}
    with pytest.raises(ValueError):
        parse_answer("no json here", analysis)
