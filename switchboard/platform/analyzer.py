"""Post-call reports: the dispatcher queues a job (a ``call_reports`` row) for every call that ends; any
worker's analyzer claims it (SKIP LOCKED, with a lease), computes the report — with the organization's
LLM when one is configured, else locally — and, in one transaction, stores it and appends the
``call_analyzed`` outbox event (which the dispatcher turns into the post-call webhook).

The LLM: the agent's own ``llm`` response engine (its provider, base_url, model; the organization's key
for that provider or the server's), else the organization's default ``llm`` provider key (OpenAI or
Groq). ``post_call_analysis.model`` overrides the model. If the model fails, the local report is stored
with ``llm_error`` saying why.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg

from agents import report as reports
from agents.factory import DEFAULT_MODEL, llm_client
from agents.providers.registry import PROVIDERS
from store import outbox, provider_keys

from . import metrics
from .logctx import bound_call

log = logging.getLogger(__name__)
LEASE_SECONDS = 120
MAX_ATTEMPTS = 5
LLM_TIMEOUT_SECONDS = 60


class Analyzer:
    def __init__(self, pool: asyncpg.Pool, worker: str, secret_box: Any = None, *, allow_private: bool = False) -> None:
        self.pool = pool
        self.worker = worker
        self.secret_box = secret_box
        self.allow_private = allow_private
        self.wake = asyncio.Event()

    async def run(self) -> None:
        while True:
            jobs: list[asyncpg.Record] = []
            try:
                jobs = await self.pool.fetch(
                    "UPDATE call_reports r SET attempts = r.attempts + 1, updated_at = clock_timestamp(),"
                    " locked_until = clock_timestamp() + make_interval(secs => $1)"
                    " FROM (SELECT call_id FROM call_reports WHERE status = 'pending'"
                    "       AND (locked_until IS NULL OR locked_until < clock_timestamp())"
                    "       ORDER BY created_at LIMIT 8 FOR UPDATE SKIP LOCKED) due"
                    " WHERE r.call_id = due.call_id RETURNING r.*", LEASE_SECONDS)
                await asyncio.gather(*(self._one(dict(job)) for job in jobs))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("post-call analysis batch failed")
                await asyncio.sleep(1.0)
            if jobs:
                continue
            try:
                await asyncio.wait_for(self.wake.wait(), 1.0)
            except TimeoutError:
                pass
            self.wake.clear()

    async def _one(self, job: dict[str, Any]) -> None:
        with bound_call(job["call_id"]):
            try:
                await self.analyze(job["call_id"])
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("post-call analysis failed (attempt %d)", job["attempts"])
                if job["attempts"] >= MAX_ATTEMPTS:  # give up on the analysis, never on the event
                    await self.pool.execute("UPDATE call_reports SET status = 'done', report = $2 WHERE call_id = $1",
                                            job["call_id"], {"error": "analysis failed"})

    async def analyze(self, call_id: Any) -> dict[str, Any] | None:
        call = await self.pool.fetchrow("SELECT * FROM calls WHERE id = $1", call_id)
        if call is None:
            await self.pool.execute("DELETE FROM call_reports WHERE call_id = $1", call_id)
            return None
        call = dict(call)
        turns = [dict(t) for t in await self.pool.fetch(
            "SELECT * FROM transcript_turns WHERE call_id = $1 ORDER BY id", call_id)]
        agent = call.get("agent_config") or (await self.pool.fetchval(
            "SELECT config FROM agents WHERE id = $1", call["agent_id"]) if call.get("agent_id") else None) or {}
        analysis = reports.analysis_config(agent)
        report = reports.local_report(call, turns, analysis=analysis)
        llm, model = await self._llm(call, agent, analysis)
        if llm is not None:
            try:
                async with asyncio.timeout(LLM_TIMEOUT_SECONDS):
                    report.update(await reports.analyze_with_llm(llm, analysis, turns))
                report["generated_by"], report["model"] = "llm", model
            except Exception as exc:  # the local report stands
                report["llm_error"] = f"{type(exc).__name__}: {exc}"[:500]
                log.warning("post-call analysis by %s failed: %s", model, report["llm_error"])
            finally:
                await llm.aclose()
        metrics.observe_call_metrics(call.get("metrics"))
        metrics.REPORTS.labels(report["generated_by"]).inc()
        async with self.pool.acquire() as conn, conn.transaction():
            done = await conn.fetchval(
                "UPDATE call_reports SET status = 'done', report = $2, locked_until = NULL,"
                " updated_at = clock_timestamp() WHERE call_id = $1 AND status = 'pending' RETURNING call_id",
                call_id, report)
            if done is not None:  # exactly one call_analyzed per call, even if two workers raced
                await outbox.append(conn, call["org_id"], call_id, "call_analyzed",
                                    {"call_id": str(call_id), "report": report})
        return report

    async def _llm(self, call: dict[str, Any], agent: dict[str, Any], analysis: dict[str, Any]) -> tuple[Any, str]:
        """The agent's own ``llm`` engine, else the organization's default LLM provider. Keys and URLs are
        decided by the provider registry, as for the call itself: a tenant's ``base_url`` never gets the
        operator's key, and is reached only through the SSRF guard."""
        engine = dict(agent.get("response_engine") or {})
        if engine.get("type") == "llm":
            provider = (engine.get("llm_provider") or "openai").lower()
        else:
            llm_providers = [name for name, p in PROVIDERS.items() if "llm" in p.types]
            found = await provider_keys.first_of(self.pool, call["org_id"], "llm", llm_providers)
            if found is None:
                return None, ""
            provider, engine = found, {"type": "llm"}
        model = analysis.get("model") or engine.get("llm_model") or DEFAULT_MODEL
        org = call["org_id"] if self.secret_box is not None else None  # no secret box: no organization keys
        llm = await llm_client({**engine, "llm_model": model, "temperature": 0}, provider,
                               provider_keys.lookup(self.pool, self.secret_box, org), allow_private=self.allow_private)
        return (llm, model) if llm is not None else (None, "")
