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
import os
from typing import Any

import asyncpg

from agents import report as reports
from agents.factory import DEFAULT_MODEL, LLM_PROVIDERS
from agents.providers.registry import base_url as env_base_url
from store import outbox

from . import metrics
from .logctx import bound_call

log = logging.getLogger(__name__)
LEASE_SECONDS = 120
MAX_ATTEMPTS = 5
LLM_TIMEOUT_SECONDS = 60


class Analyzer:
    def __init__(self, pool: asyncpg.Pool, worker: str, secret_box: Any = None) -> None:
        self.pool = pool
        self.worker = worker
        self.secret_box = secret_box
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
        engine = agent.get("response_engine") or {}
        provider: str | None = None
        base: str | None = None
        model = analysis.get("model")
        if engine.get("type") == "llm":
            provider = (engine.get("llm_provider") or "openai").lower()
            base = engine.get("base_url")
            model = model or engine.get("llm_model")
        else:
            provider = await self.pool.fetchval(
                "SELECT provider_name FROM provider_keys WHERE org_id = $1 AND provider_type = 'llm'"
                " AND provider_name = ANY($2::text[]) ORDER BY is_default DESC, created_at DESC LIMIT 1",
                call["org_id"], list(LLM_PROVIDERS))
        if provider is None:
            return None, ""
        base = base or env_base_url(provider) or LLM_PROVIDERS.get(provider, (None, ""))[0]
        key = await self._key(call["org_id"], provider) or os.environ.get(LLM_PROVIDERS.get(provider, (None, ""))[1])
        if not (key or (engine.get("type") == "llm" and base)):
            return None, ""
        from agents.providers.openai_llm import OpenAILLM

        model = model or DEFAULT_MODEL
        return OpenAILLM(model=model, base_url=base, api_key=key or "", temperature=0), model

    async def _key(self, org_id: Any, provider: str) -> str | None:
        enc = await self.pool.fetchval(
            "SELECT key_enc FROM provider_keys WHERE org_id = $1 AND provider_name = $2"
            " ORDER BY (provider_type = 'llm') DESC, is_default DESC, created_at DESC LIMIT 1", org_id, provider)
        if enc is None or self.secret_box is None:
            return None
        try:
            return str(self.secret_box.decrypt(enc))
        except ValueError:
            log.warning("the organization's %s key cannot be decrypted", provider)
            return None
