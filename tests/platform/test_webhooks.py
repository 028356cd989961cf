"""Webhooks from the outbox: signed deliveries to a receiver on loopback, URL precedence, retries with
backoff, giving up, the SSRF guard, the delivery log and its retry endpoint."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from store import outbox
from switchboard.platform import targets
from switchboard.platform.deliverer import DeliveryPolicy
from tests.platform.conftest import Receiver, api, seed

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_verify() -> Any:
    """The ``verify`` function exactly as the README documents it."""
    section = README.read_text().split("## Webhooks, live transcripts", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert code, "the README's webhook section has no Python snippet"
    namespace: dict[str, Any] = {}
    exec(compile(code[1], "README.md", "exec"), namespace)  # noqa: S102 - the documented snippet itself
    return namespace["verify"]


async def _status(db: asyncpg.Pool, call: dict[str, Any], status: str, previous: str, **extra: Any) -> int:
    async with db.acquire() as conn, conn.transaction():
        return await outbox.append(conn, call["org_id"], call["id"], "call_status", {
            "call_id": str(call["id"]), "status": status, "previous_status": previous,
            "disconnection_reason": extra.get("reason"), "hangup_cause": extra.get("cause"), "sip_status": None,
            "at": "2026-11-30T06:00:00Z"})


async def _event(db: asyncpg.Pool, call: dict[str, Any], name: str, payload: dict[str, Any] | None = None) -> int:
    async with db.acquire() as conn, conn.transaction():
        return await outbox.append(conn, call["org_id"], call["id"], name, payload or {"call_id": str(call["id"])})


async def test_signed_deliveries_verified_by_the_readme_snippet(db, client: TestClient, platform, receiver: Receiver
                                                                 ) -> None:
    org = await seed(db, agent_config={"webhook_url": receiver.url + "/hooks"})
    _, body = await api(client, org.key, "POST", "/webhook-secret/rotate", expect=200)
    secret = body["data"]["webhook_secret"]
    assert secret.startswith("whsec_")
    _, shown = await api(client, org.key, "GET", "/webhook-settings", expect=200)
    assert secret not in str(shown) and shown["data"]["secret_hint"].endswith(secret[-4:])

    call = await org.call(db)
    await platform()
    await _status(db, call, "ringing", "pending")
    await _event(db, call, "call_started")
    await _event(db, call, "transcript_turn", {"role": "user", "content": "hello"})  # not a webhook event
    await _status(db, call, "completed", "in_progress", reason="user_hangup", cause="NORMAL_CLEARING")
    await _event(db, call, "call_completed")
    got = await receiver.wait_for(lambda r: len(r) >= 4)

    verify = readme_verify()
    assert {r.headers["X-Switchboard-Event"] for r in got} == {"call_status", "call_started", "call_completed"}
    for request in got:
        assert request.path == "/hooks" and request.method == "POST"
        assert verify(secret, request.headers, request.body), request.headers
        assert not verify(secret, request.headers, request.body + b" "), "a changed body must fail"
        assert not verify("whsec_wrong", request.headers, request.body)
        payload = request.json
        assert payload["event"] == request.headers["X-Switchboard-Event"]
        assert payload["event_id"] == request.headers["X-Switchboard-Event-Id"]
        assert payload["call_id"] == str(call["id"])
    assert len({r.json["event_id"] for r in got}) == len(got)  # unique event ids
    ended = [r.json for r in receiver.events("call_status") if r.json["data"]["status"] == "completed"]
    assert ended and ended[0]["data"]["hangup_cause"] == "NORMAL_CLEARING"
    assert ended[0]["data"]["previous_status"] == "in_progress"
    done = receiver.events("call_completed")[0].json["data"]["call"]
    assert done["call_id"] == str(call["id"]) and done["direction"] == "outbound"

    # a stale timestamp is refused by the snippet even with a correct MAC
    old = str(int(time.time()) - 3600)
    import hashlib
    import hmac
    mac = hmac.new(secret.encode(), old.encode() + b"." + got[0].body, hashlib.sha256).hexdigest()
    assert not verify(secret, {"X-Switchboard-Timestamp": old, "X-Switchboard-Signature": "v1=" + mac}, got[0].body)

    # the delivery log: every delivery delivered, one attempt each, filterable by call/event/status. The ended
    # call is analysed too (call_analyzed, a fifth delivery), and the receiver has each request before the
    # deliverer has written its outcome: wait for those writes
    for _ in range(400):
        _, delivered = await api(client, org.key, "GET", "/webhook-deliveries?status=delivered", expect=200)
        if delivered["meta"]["total"] >= 5:
            break
        await asyncio.sleep(0.05)
    _, listed = await api(client, org.key, "GET", f"/webhook-deliveries?call_id={call['id']}", expect=200)
    assert sorted(d["event"] for d in listed["data"]) == \
        ["call_analyzed", "call_completed", "call_started", "call_status", "call_status"], listed["data"]
    _, only = await api(client, org.key, "GET", "/webhook-deliveries?event=call_status&status=delivered&limit=1",
                        expect=200)
    assert only["meta"]["total"] == 2 and len(only["data"]) == 1
    _, pending = await api(client, org.key, "GET", "/webhook-deliveries?status=pending", expect=200)
    assert pending["meta"]["total"] == 0
    one = only["data"][0]
    _, detail = await api(client, org.key, "GET", f"/webhook-deliveries/{one['id']}", expect=200)
    assert [a["status_code"] for a in detail["data"]["attempt_log"]] == [200]
    assert detail["data"]["source"] == "agent" and detail["data"]["url"] == receiver.url + "/hooks"
    await api(client, org.key, "GET", "/webhook-deliveries?status=lost", expect=422)


async def test_precedence_call_over_agent_over_organization_with_method_and_headers(
        db, client: TestClient, platform, receiver: Receiver) -> None:
    org = await seed(db, agent_config={
        "webhook_url": receiver.url + "/agent-general",
        "post_call_webhook_url": receiver.url + "/agent-post", "post_call_webhook_method": "PUT",
        "post_call_webhook_headers": [{"key": "X-Token", "value": "agent-secret"}]})
    await api(client, org.key, "PATCH", "/webhook-settings", json={"webhook_url": receiver.url + "/org"}, expect=200)
    overridden = await org.call(db, webhooks={
        "call_status_webhook_url": receiver.url + "/call-status", "call_status_webhook_method": "PATCH",
        "call_status_webhook_headers": [{"key": "Authorization", "value": "Bearer call-token"}]})
    plain = await org.call(db)
    orphan = await org.call(db, agent_id=None, agent_config=None)
    await platform()
    await _status(db, overridden, "ringing", "pending")
    await _status(db, plain, "ringing", "pending")
    await _status(db, orphan, "ringing", "pending")
    await _event(db, plain, "call_analyzed", {"report": {"summary": "x"}})
    got = await receiver.wait_for(lambda r: len(r) >= 4)
    by_path = {r.path: r for r in got}
    assert by_path["/call-status"].method == "PATCH"
    assert by_path["/call-status"].headers["Authorization"] == "Bearer call-token"
    assert by_path["/call-status"].json["call_id"] == str(overridden["id"])
    assert by_path["/agent-general"].json["call_id"] == str(plain["id"])  # agent's webhook_url: status events
    assert by_path["/agent-post"].method == "PUT" and by_path["/agent-post"].headers["X-Token"] == "agent-secret"
    assert by_path["/agent-post"].json["event"] == "call_analyzed"
    assert by_path["/org"].json["call_id"] == str(orphan["id"])  # no agent: the organization default

    # the organization's event filter: only call_completed reaches its URL
    await api(client, org.key, "PATCH", "/webhook-settings", json={"webhook_events": ["call_completed"]}, expect=200)
    await _status(db, orphan, "in_progress", "ringing")
    await _event(db, orphan, "call_completed")
    got = await receiver.wait_for(lambda r: any(x.json["event"] == "call_completed" for x in r))
    await_status = [r for r in got if r.path == "/org"]
    assert [r.json["event"] for r in await_status] == ["call_status", "call_completed"]


def test_resolve_rules() -> None:
    agent = {"webhook_url": "https://a/general", "call_status_webhook_url": None}
    task = {"webhook_url": "https://t/hook", "webhook_events": ["call_started"]}
    org = {"webhook_url": "https://o/hook", "webhook_events": None}
    call = {"webhooks": {"post_call_webhook_url": "https://c/post"}}
    assert targets.resolve("call_analyzed", call=call, task=task, agent=agent, org=org).url == "https://c/post"
    assert targets.resolve("call_started", call=call, task=task, agent=agent, org=org).url == "https://t/hook"
    assert targets.resolve("call_completed", call=call, task=task, agent=agent, org=org) is None  # task filter
    assert targets.resolve("call_status", call=None, task=None, agent=agent, org=org).source == "agent"
    assert targets.resolve("call_status", call=None, task=None, agent={}, org=org).source == "organization"
    assert targets.resolve("transcript_turn", call=call, task=task, agent=agent, org=org) is None


async def test_retried_with_backoff_then_delivered_and_every_attempt_logged(db, client: TestClient, platform,
                                                                             receiver: Receiver) -> None:
    receiver.answers = [500, 503]
    org = await seed(db, agent_config={"webhook_url": receiver.url})
    call = await org.call(db)
    await platform(policy=DeliveryPolicy(timeout_seconds=2, first_delay_seconds=0.2, max_delay_seconds=5,
                                         lease_seconds=5))
    await _event(db, call, "call_started")
    got = await receiver.wait_for(lambda r: len(r) >= 3)
    assert len({r.json["event_id"] for r in got}) == 1  # the same event, three times
    assert len({r.headers["X-Switchboard-Delivery"] for r in got}) == 1
    _, listed = await api(client, org.key, "GET", f"/webhook-deliveries?call_id={call['id']}", expect=200)
    delivery = listed["data"][0]
    # the third attempt's row is written just after the receiver answered
    detail = await until(lambda: api(client, org.key, "GET", f"/webhook-deliveries/{delivery['id']}"),
                         lambda b: b["data"]["status"] == "delivered")
    log = detail["data"]["attempt_log"]
    assert detail["data"]["attempts"] == 3
    assert [a["status_code"] for a in log] == [500, 503, 200]
    starts = [a["started_at"] for a in log]
    from datetime import datetime
    gaps = [(datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds()
            for a, b in zip(starts, starts[1:], strict=False)]
    # backoff: 0.2 s × 2^(n-1) × jitter 0.5–1.0 → first gap ≥ 0.1 s, second ≥ 0.2 s
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2, gaps


async def test_gives_up_after_the_retry_window_and_manual_retry_sends_again(db, client: TestClient, platform,
                                                                             receiver: Receiver) -> None:
    receiver.answers = [500] * 50
    org = await seed(db, agent_config={"webhook_url": receiver.url})
    call = await org.call(db)
    await platform(policy=DeliveryPolicy(timeout_seconds=2, first_delay_seconds=0.05, max_delay_seconds=0.1,
                                         retry_window_seconds=0.6, lease_seconds=5))
    await _event(db, call, "call_failed")
    listed = await until(lambda: api(client, org.key, "GET", "/webhook-deliveries?status=failed"),
                         lambda b: bool(b["data"]))
    failed = listed["data"][0]
    assert failed["attempts"] >= 2 and failed["last_status_code"] == 500
    count = len(receiver.received)
    receiver.answers = []
    _, retried = await api(client, org.key, "POST", f"/webhook-deliveries/{failed['id']}/retry", expect=200)
    assert retried["data"]["status"] == "pending"
    await receiver.wait_for(lambda r: len(r) > count)
    await api(client, (await seed(db, "globex")).key, "POST", f"/webhook-deliveries/{failed['id']}/retry", expect=404)


async def test_private_addresses_refused_without_the_operator_setting(db, client: TestClient, platform,
                                                                      receiver: Receiver) -> None:
    org = await seed(db, agent_config={"webhook_url": receiver.url})
    call = await org.call(db)
    await platform(allow_private=False, policy=DeliveryPolicy(first_delay_seconds=30, lease_seconds=5))
    await _event(db, call, "call_started")
    listed = await until(lambda: api(client, org.key, "GET", f"/webhook-deliveries?call_id={call['id']}"),
                         lambda b: bool(b["data"]) and bool(b["data"][0]["last_error"]))
    assert "refused" in listed["data"][0]["last_error"] and "loopback" in listed["data"][0]["last_error"]
    assert receiver.received == []


async def test_a_hanging_receiver_times_out_and_never_blocks_call_writes(db, client: TestClient, platform,
                                                                         receiver: Receiver) -> None:
    receiver.answers = ["hang"]
    org = await seed(db, agent_config={"webhook_url": receiver.url})
    call = await org.call(db)
    await platform(policy=DeliveryPolicy(timeout_seconds=8, first_delay_seconds=0.05, lease_seconds=20))
    await _event(db, call, "call_started")
    await receiver.wait_for(lambda r: len(r) >= 1)
    # while that request hangs, the call's own writes go on, and its status change is delivered beside it
    await _status(db, call, "completed", "in_progress")
    await receiver.wait_for(lambda r: any(x.json["event"] == "call_status" for x in r), within=6)
    assert await db.fetchval("SELECT count(*) FROM webhook_attempts a JOIN webhook_deliveries d"
                             " ON d.id = a.delivery_id WHERE d.event = 'call_started'") == 0  # still hanging
    # the hung attempt timed out (8 s) and was retried
    await receiver.wait_for(lambda r: sum(1 for x in r if x.json["event"] == "call_started") == 2)
    _, listed = await api(client, org.key, "GET", "/webhook-deliveries?event=call_started", expect=200)
    _, detail = await api(client, org.key, "GET", f"/webhook-deliveries/{listed['data'][0]['id']}", expect=200)
    assert detail["data"]["attempt_log"][0]["error"].startswith("timeout")


async def test_tenancy_and_validation(db, client: TestClient) -> None:
    acme, globex = await seed(db, "acme"), await seed(db, "globex")
    await api(client, acme.key, "PATCH", "/webhook-settings", json={"webhook_url": "ftp://x"}, expect=422)
    await api(client, acme.key, "PATCH", "/webhook-settings", json={"webhook_events": ["nope"]}, expect=422)
    _, mine = await api(client, acme.key, "PATCH", "/webhook-settings",
                        json={"webhook_url": "https://example.com/h", "webhook_events": ["call_completed"]}, expect=200)
    assert mine["data"]["webhook_url"] == "https://example.com/h"
    _, theirs = await api(client, globex.key, "GET", "/webhook-settings", expect=200)
    assert theirs["data"]["webhook_url"] is None
    _, cleared = await api(client, acme.key, "PATCH", "/webhook-settings", json={"webhook_url": None}, expect=200)
    assert cleared["data"]["webhook_url"] is None and cleared["data"]["webhook_events"] == ["call_completed"]
    await api(client, acme.key, "GET", "/webhook-deliveries/00000000-0000-0000-0000-000000000000", expect=404)
    await api(client, acme.key, "GET", "/webhook-deliveries/not-a-uuid", expect=404)


async def until(fetch: Any, done: Any, within: float = 20.0) -> Any:
    """Poll an API read until ``done(body)``: the state the test waits for (bounded)."""
    async with asyncio.timeout(within):
        while True:
            status, body = await fetch()
            assert status == 200, body
            if done(body):
                return body
            await asyncio.sleep(0.05)


async def test_a_malformed_outbox_row_is_skipped_and_does_not_stall_the_others(db, platform, receiver: Receiver
                                                                                ) -> None:
    org = await seed(db, agent_config={"webhook_url": receiver.url})
    call = await org.call(db)
    async with db.acquire() as conn, conn.transaction():
        bad = await outbox.append(conn, org.org_id, call["id"], "call_status", ["not", "an", "object"])  # type: ignore[arg-type]
        await outbox.append(conn, org.org_id, call["id"], "call_started", {"call_id": str(call["id"])})
    await platform()
    got = await receiver.wait_for(lambda r: len(r) >= 1)
    assert [r.json["event"] for r in got] == ["call_started"]
    assert await db.fetchval("SELECT dispatched_at IS NOT NULL FROM outbox WHERE id = $1", bad)
