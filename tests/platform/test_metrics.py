"""GET /metrics (Prometheus text) and the call id on log lines."""

from __future__ import annotations

import asyncio
import io
import logging
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from agents.providers.local_tts import LocalTTS
from agents.providers.phrase_cache import PhraseCache
from store import outbox
from switchboard.calls.media_loop import MediaStats
from switchboard.config import Settings
from switchboard.platform import logctx, metrics
from switchboard.server import init_app
from tests.platform.conftest import Receiver, seed


async def scrape(client: TestClient, **headers: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    resp = await client.get("/metrics", headers=headers)
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    out = {}
    for family in text_string_to_metric_families(await resp.text()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


async def test_metrics_endpoint(db: asyncpg.Pool, client: TestClient, settings: Settings, platform,
                                receiver: Receiver) -> None:
    org = await seed(db, agent_config={"webhook_url": receiver.url})
    for direction in ("outbound", "outbound", "inbound"):
        await org.call(db, status="in_progress", direction=direction, worker_id=settings.worker)
    await org.call(db, status="in_progress", worker_id="another-worker")  # not this worker's
    ended = await org.call(db, status="busy", worker_id=settings.worker)
    before = await scrape(client)
    assert before[("switchboard_active_calls", (("direction", "outbound"),))] == 2
    assert before[("switchboard_active_calls", (("direction", "inbound"),))] == 1
    busy_key = ("switchboard_calls_ended_total", (("cause", "USER_BUSY"), ("status", "busy")))
    fail_key = ("switchboard_webhook_delivery_failures_total", (("reason", "http_status"),))
    llm_key = ("switchboard_provider_latency_seconds_count", (("stage", "llm"),))
    latency_key = ("switchboard_webhook_delivery_latency_seconds_count", ())

    receiver.answers = [500]
    await db.execute("UPDATE calls SET metrics = $2 WHERE id = $1", ended["id"],
                     {"per_turn": [{"llm_latency_ms": 250.0, "stt_latency_ms": 90.0}]})
    await platform()
    async with db.acquire() as conn, conn.transaction():
        await outbox.append(conn, org.org_id, ended["id"], "call_status", {
            "call_id": str(ended["id"]), "status": "busy", "previous_status": "ringing", "hangup_cause": "USER_BUSY"})
    await receiver.wait_for(lambda r: len(r) >= 3)  # call_status failed once, then again, + call_analyzed
    async with asyncio.timeout(10):
        while True:
            after = await scrape(client)
            if all(after.get(k, 0) > before.get(k, 0) for k in (llm_key, fail_key, latency_key)):
                break
            await asyncio.sleep(0.05)  # the analyzer observes the call's latencies just after it reports
    assert after[busy_key] == before.get(busy_key, 0) + 1
    assert after[("switchboard_webhook_queue_depth", ())] >= 0
    assert ("switchboard_media_ticks_on_time_ratio", ()) in after

    await db.execute("INSERT INTO webhook_deliveries (org_id, event, event_id, url, body, source, event_at,"
                     " next_attempt_at) VALUES ($1, 'call_started', 'evt_x', 'http://127.0.0.1:9/', '{}', 'agent',"
                     " now(), now() + interval '1 hour')", org.org_id)
    assert (await scrape(client))[("switchboard_webhook_queue_depth", ())] == 1


def test_media_stats_gauges() -> None:
    metrics.set_media_stats(MediaStats(ticks=200, late_ticks=10, max_lateness_ms=35.0, rx_frames=4000))
    assert metrics.MEDIA_ON_TIME._value.get() == pytest.approx(0.95)
    assert metrics.MEDIA_MAX_LATENESS._value.get() == pytest.approx(0.035)
    assert metrics.MEDIA_RX_FRAMES._value.get() == 4000
    metrics.set_media_stats(MediaStats(ticks=200, vad_jobs=190, vad_seconds=0.95, vad_unanalysed_seconds=0.5))
    assert metrics.MEDIA_VAD_JOBS._value.get() == 190
    assert metrics.MEDIA_VAD_SECONDS._value.get() == pytest.approx(0.95)
    assert metrics.MEDIA_VAD_UNANALYSED._value.get() == pytest.approx(0.5)


async def test_phrase_cache_gauges() -> None:
    cache, tts = PhraseCache(), LocalTTS()
    for _ in range(3):  # one greeting, said to three calls: synthesised once
        audio = await cache.synthesize(tts, "Thanks for calling.", "en-us", 8000).collect()
    metrics.set_phrase_cache(cache)
    assert (metrics.PHRASES_HITS._value.get(), metrics.PHRASES_MISSES._value.get()) == (2, 1)
    assert metrics.PHRASES_BYTES._value.get() == audio.nbytes > 0


async def test_metrics_token(db: asyncpg.Pool, aiohttp_client: Any, tmp_path: Path, database_url: str,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_METRICS_TOKEN", "scrape-me")
    settings = Settings(data_dir=tmp_path, database_url=database_url, secret_key="k")
    client = await aiohttp_client(init_app(settings, database_url, bootstrap=False, platform=False))
    assert (await client.get("/metrics")).status == 401
    assert (await client.get("/metrics", headers={"Authorization": "Bearer wrong"})).status == 401
    await scrape(client, Authorization="Bearer scrape-me")
    # A scraper that asks for OpenMetrics gets it (content type and body agree, whatever the library's default).
    resp = await client.get("/metrics", headers={"Authorization": "Bearer scrape-me",
                                                 "Accept": "application/openmetrics-text; version=1.0.0"})
    assert resp.headers["Content-Type"].startswith("application/openmetrics-text")
    assert (await resp.text()).rstrip().endswith("# EOF")


async def test_log_lines_carry_the_call_id() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("test.logctx")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logctx.install(logger)
    call_id = uuid.uuid4()
    try:
        logger.info("no call")

        async def in_call() -> None:
            logger.info("inside the call's task")

        await asyncio.get_running_loop().create_task(in_call(), name=f"call-{call_id}-media-timeout")
        other = uuid.uuid4()
        with logctx.bound_call(other):
            logger.info("bound explicitly")
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert "[call=" not in lines[0] and lines[0].endswith(": no call")
    assert f"[call={call_id}]: inside the call's task" in lines[1]
    assert f"[call={other}]: bound explicitly" in lines[2]
