"""Outbox → webhook deliveries (and post-call report jobs), at least once, any number of workers.

One batch = one transaction: claim undispatched outbox rows ``FOR UPDATE SKIP LOCKED`` (two workers
never take the same rows), insert the deliveries they lead to (unique per outbox row and URL, so a
replay cannot double them), queue a report job for every call that ended, and mark the rows dispatched.
A worker that dies mid-batch rolls it back: the rows are simply dispatched by the next one.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

import asyncpg

from store import webhooks as store

from . import metrics, targets

log = logging.getLogger(__name__)
BATCH = 500


def is_call_end(event: str, payload: Mapping[str, Any]) -> bool:
    if event in ("call_completed", "call_failed"):
        return True
    return event == "call_status" and payload.get("status") in targets.ENDED


async def _task(conn: asyncpg.Connection, call: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The task a call was placed for (its webhook_url / webhook_events), once tasks exist."""
    task_id = (call or {}).get("task_id")
    if task_id is None:
        return None
    try:
        found = await conn.fetchrow("SELECT * FROM tasks WHERE id = $1", task_id)
    except asyncpg.UndefinedTableError:
        return None
    return dict(found) if found else None


async def dispatch_batch(pool: asyncpg.Pool, base_url: str, *, limit: int = BATCH) -> tuple[int, int]:
    """Dispatch one batch; returns (outbox rows handled, deliveries created)."""
    ended: list[tuple[str, str]] = []
    deliveries: list[dict[str, Any]] = []
    finished: dict[Any, Any] = {}  # call id → org id: calls that ended (a report job each)
    async with pool.acquire() as conn, conn.transaction():
        events = await conn.fetch(
            "SELECT * FROM outbox WHERE dispatched_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED", limit)
        if not events:
            return 0, 0
        call_ids = list({e["call_id"] for e in events if e["call_id"] is not None})
        calls = {r["id"]: dict(r) for r in await conn.fetch("SELECT * FROM calls WHERE id = ANY($1::uuid[])", call_ids)}
        org_ids = list({e["org_id"] for e in events if e["org_id"] is not None})
        orgs = {r["id"]: dict(r) for r in await conn.fetch(
            "SELECT id, webhook_url, webhook_events FROM organizations WHERE id = ANY($1::uuid[])", org_ids)}
        agents: dict[Any, dict[str, Any] | None] = {}
        for event in events:
            name, payload, call = event["event"], event["payload"] or {}, calls.get(event["call_id"])
            if not isinstance(payload, dict):  # one malformed row must not stall the rest
                log.error("outbox event %s (%s) has a non-object payload; skipped", event["id"], name)
                continue
            if call is not None and is_call_end(name, payload):
                finished[call["id"]] = call["org_id"]
                if name == "call_status":
                    ended.append((str(payload.get("status")), str(payload.get("hangup_cause") or "")))
            if name not in targets.WEBHOOK_EVENTS or event["org_id"] is None:
                continue
            agent = await _agent_config(conn, call, agents)
            target = targets.resolve(name, call=call, task=await _task(conn, call), agent=agent,
                                     org=orgs.get(event["org_id"]))
            if target is None:
                continue
            transcript: list[Mapping[str, Any]] | None = None
            report = None
            if name == "call_analyzed" and call is not None:
                transcript = [dict(t) for t in await conn.fetch(
                    "SELECT * FROM transcript_turns WHERE call_id = $1 ORDER BY id", call["id"])]
                report = await conn.fetchval("SELECT report FROM call_reports WHERE call_id = $1", call["id"])
            try:
                data = targets.event_data(name, payload, call, base_url, transcript, report)
                event_id = f"evt_{event['id']}"
                body = targets.body(name, event_id, event["created_at"], event["call_id"], data,
                                    task_id=(call or {}).get("task_id"))
            except (TypeError, ValueError, KeyError, AttributeError):
                log.exception("outbox event %s (%s) cannot be turned into a webhook; skipped", event["id"], name)
                continue
            deliveries.append({
                "id": uuid.uuid4(), "org_id": event["org_id"], "outbox_id": event["id"], "call_id": event["call_id"],
                "event": name, "event_id": event_id, "url": target.url, "method": target.method,
                "headers": target.headers, "source": target.source, "event_at": event["created_at"], "body": body,
            })
        if finished:
            await conn.execute(
                "INSERT INTO call_reports (call_id, org_id) SELECT * FROM unnest($1::uuid[], $2::uuid[])"
                " ON CONFLICT (call_id) DO NOTHING", list(finished), list(finished.values()))
        created = await store.insert_deliveries(conn, deliveries)
        await conn.execute("UPDATE outbox SET dispatched_at = clock_timestamp() WHERE id = ANY($1::bigint[])",
                           [e["id"] for e in events])
    for status, cause in ended:  # counted after commit: once per ended call, cluster-wide
        metrics.CALLS_ENDED.labels(status, cause or "none").inc()
    return len(events), created


async def _agent_config(conn: asyncpg.Connection, call: Mapping[str, Any] | None,
                        cache: dict[Any, dict[str, Any] | None]) -> dict[str, Any] | None:
    """The agent's webhook settings: the call's snapshot of its agent, else the agent row."""
    if call is None:
        return None
    if call.get("agent_config"):
        return call["agent_config"]
    agent_id = call.get("agent_id")
    if agent_id is None:
        return None
    if agent_id not in cache:
        cache[agent_id] = await conn.fetchval("SELECT config FROM agents WHERE id = $1", agent_id)
    return cache[agent_id]
