"""Calls: the curl examples of the calls reference, adapted to this API, behave as API.md says."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from store import calls as call_store

TRUNK_REQUIRED = "A trunk is required when calling E.164 phone numbers."


async def test_single_e164_call_is_pending_with_clean_number(tenant, agent, number, trunk, db):
    status, body = await tenant.post("/calls", {"to_number": "+1 (863) 990-1708", "agent_id": agent["id"],
                                                "number_id": number["id"], "trunk_id": trunk["id"], "record": True})
    assert status == 201, body
    assert body["message"] == "Call initiated successfully"
    call = body["data"]
    assert call["status"] == "pending" and call["direction"] == "outbound"
    assert call["to_number"] == "+18639901708" and call["from_number"] == "+15559876543"
    assert call["agent"] == "Support" and call["agent_id"] == agent["id"] and call["trunk_id"] == trunk["id"]
    assert call["call_id"] == call["id"]
    assert call["duration_seconds"] is None and call["hangup_cause"] is None
    events = await call_store.events(db, uuid.UUID(call["id"]))
    assert [e["status"] for e in events] == ["pending"]  # persisted, no progress faked
    _, got = await tenant.get(f"/calls/{call['id']}")
    assert got["data"]["status"] == "pending" and got["data"]["transcript"] == []


async def test_loose_formats_are_cleaned(tenant, agent, trunk):
    for raw, clean in (("+1-555-123-4567", "+15551234567"), ("+15551234567", "+15551234567"),
                       (" +44 20 7946 0958 ", "+442079460958")):
        _, body = await tenant.post("/calls", {"to_number": raw, "agent_id": agent["id"], "trunk_id": trunk["id"]},
                                    expect=201)
        assert body["data"]["to_number"] == clean


async def test_batch_of_three_makes_three_calls(tenant, agent, number, trunk):
    status, body = await tenant.post("/calls", {
        "to_number": ["+15551234567", "+15559876543", "+15558889999"],
        "agent_id": agent["id"], "number_id": number["id"], "trunk_id": trunk["id"], "record": True})
    assert status == 201
    assert body["message"] == "3 calls initiated successfully"
    assert len(body["data"]) == 3 and len({c["call_id"] for c in body["data"]}) == 3
    assert [c["to_number"] for c in body["data"]] == ["+15551234567", "+15559876543", "+15558889999"]
    _, listed = await tenant.get("/calls")
    assert listed["meta"]["total"] == 3


async def test_sip_uri_without_trunk_is_accepted(tenant, agent, number):
    status, body = await tenant.post("/calls", {"to_number": "sip:1001@sip.example.com", "agent_id": agent["id"],
                                                "number_id": number["id"], "record": True})
    assert status == 201
    assert body["data"]["to_number"] == "sip:1001@sip.example.com"
    # the number's trunk is used when none is given
    assert body["data"]["trunk_id"] == number["trunk_id"]
    status, body = await tenant.post("/calls", {"to_number": "sip:alice@127.0.0.1:5070", "agent_id": agent["id"]})
    assert status == 201 and body["data"]["trunk_id"] is None


async def test_e164_without_any_trunk_is_422_with_the_message(tenant, agent):
    status, body = await tenant.post("/calls", {"to_number": "+15551234567", "agent_id": agent["id"]})
    assert status == 422
    assert body["error"]["message"] == TRUNK_REQUIRED
    assert body["error"]["fields"] == {"trunk_id": [TRUNK_REQUIRED]}
    _, listed = await tenant.get("/calls")
    assert listed["meta"]["total"] == 0


async def test_invalid_entries_in_a_batch_name_their_index_and_create_nothing(tenant, agent, trunk):
    status, body = await tenant.post("/calls", {"to_number": ["+15551234567", "not-a-number", "sip:", "+1555"],
                                                "agent_id": agent["id"], "trunk_id": trunk["id"]})
    assert status == 422
    assert set(body["error"]["fields"]) == {"to_number.1", "to_number.2", "to_number.3"}
    assert "E.164" in body["error"]["fields"]["to_number.1"][0]
    _, listed = await tenant.get("/calls")
    assert listed["meta"]["total"] == 0
    status, body = await tenant.post("/calls", {"to_number": "12345", "agent_id": agent["id"], "trunk_id": trunk["id"]})
    assert status == 422 and "to_number" in body["error"]["fields"]
    status, body = await tenant.post("/calls", {"to_number": ["+15551234567"] * 1001, "agent_id": agent["id"],
                                                "trunk_id": trunk["id"]})
    assert status == 422


async def test_call_reference_errors(tenant, agent, trunk, number, other):
    base = {"to_number": "+15551234567", "trunk_id": trunk["id"]}
    cases = [
        ({**base}, "agent_id"),
        ({**base, "agent_id": str(uuid.uuid4())}, "agent_id"),
        ({**base, "agent_id": agent["id"], "number_id": str(uuid.uuid4())}, "number_id"),
        ({**base, "agent_id": agent["id"], "trunk_id": str(uuid.uuid4())}, "trunk_id"),
        ({**base, "agent_id": agent["id"], "from_number": "abc"}, "from_number"),
        ({**base, "agent_id": agent["id"], "metadata": {"x": "y" * 17000}}, "metadata"),
        ({**base, "agent_id": agent["id"], "max_duration_seconds": 10}, "max_duration_seconds"),
        ({**base, "agent_id": agent["id"], "agent": {"name": "inline"}}, "agent"),
        ({**base, "agent_id": agent["id"], "post_call_webhook_method": "TRACE"}, "post_call_webhook_method"),
    ]
    for payload, field in cases:
        status, body = await tenant.post("/calls", payload)
        assert status == 422, (payload, body)
        assert field in body["error"]["fields"], (payload, body)
    await tenant.patch(f"/numbers/{number['id']}", {"status": "inactive"}, expect=200)
    status, body = await tenant.post("/calls", {**base, "agent_id": agent["id"], "number_id": number["id"]})
    assert status == 422 and body["error"]["fields"]["number_id"] == ["The number must be active."]
    # another tenant's agent is as unknown as a missing one
    status, body = await other.post("/calls", {"to_number": "sip:x@127.0.0.1", "agent_id": agent["id"]})
    assert status == 422 and "agent_id" in body["error"]["fields"]


async def test_inline_agent_and_overrides(tenant, trunk):
    status, body = await tenant.post("/calls", {
        "to_number": "+15551234567", "trunk_id": trunk["id"], "from_number": "+1 555 000 1111",
        "agent": {"name": "Inline", "begin_message": "Hello {{user.name}}", "recording_enabled": False},
        "user_data": {"name": "Ada"}, "metadata": {"crm_id": 42}, "max_duration_seconds": 120,
        "call_status_webhook_url": "https://example.com/status",
        "call_status_webhook_headers": [{"key": "X-Token", "value": "t"}],
    })
    assert status == 201, body
    call = body["data"]
    assert call["agent"] == "Inline" and call["agent_id"] is None
    assert call["from_number"] == "+15550001111" and call["record"] is False
    assert call["user_data"] == {"name": "Ada"} and call["metadata"] == {"crm_id": 42}
    assert call["max_duration_seconds"] == 120


async def test_list_filters(tenant, agent, trunk, number, db):
    _, a = await tenant.post("/calls", {"to_number": "+15551230001", "agent_id": agent["id"], "trunk_id": trunk["id"]})
    _, b = await tenant.post("/calls", {"to_number": "sip:bob@127.0.0.1", "agent_id": agent["id"],
                                        "number_id": number["id"]})
    a_id, b_id = a["data"]["id"], b["data"]["id"]
    await call_store.transition(db, uuid.UUID(b_id), "busy", allowed_from=("pending",), hangup_cause="USER_BUSY")

    async def ids(query: str) -> set[str]:
        status, body = await tenant.get("/calls" + query)
        assert status == 200, body
        return {c["id"] for c in body["data"]}

    assert await ids("") == {a_id, b_id}
    assert await ids("?status=busy") == {b_id}
    assert await ids("?status=pending") == {a_id}
    assert await ids(f"?number_id={number['id']}") == {b_id}
    assert await ids(f"?trunk_id={trunk['id']}") == {a_id, b_id}
    assert await ids(f"?agent_id={agent['id']}&direction=outbound") == {a_id, b_id}
    assert await ids("?direction=inbound") == set()
    assert await ids("?search=1230001") == {a_id}
    assert await ids(f"?search={b_id}") == {b_id}
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    assert await ids(f"?date_from={future}") == set()
    assert await ids(f"?date_to={future}") == {a_id, b_id}
    assert await ids("?date_from=2020-01-01T00:00:00") == {a_id, b_id}
    _, active = await tenant.get("/calls/active")
    assert {c["id"] for c in active["data"]} == {a_id}
    status, body = await tenant.get("/calls?status=ongoing")
    assert status == 422 and "status" in body["error"]["fields"]
    status, body = await tenant.get("/calls?date_from=yesterday")
    assert status == 422 and "date_from" in body["error"]["fields"]


async def test_delete_only_ended_calls(tenant, agent, db):
    _, body = await tenant.post("/calls", {"to_number": "sip:bob@127.0.0.1", "agent_id": agent["id"]}, expect=201)
    call_id = body["data"]["id"]
    status, body = await tenant.delete(f"/calls/{call_id}")
    assert status == 409
    assert body["error"]["message"] == "Cannot delete an active call. Wait for the call to complete or fail."
    await call_store.transition(db, uuid.UUID(call_id), "completed", allowed_from=("pending",))
    assert (await tenant.delete(f"/calls/{call_id}"))[0] == 204
    assert (await tenant.get(f"/calls/{call_id}"))[0] == 404
    assert await db.fetchval("SELECT count(*) FROM call_events WHERE call_id = $1", uuid.UUID(call_id)) == 0
    assert (await tenant.delete(f"/calls/{call_id}"))[0] == 404


async def test_end_and_cancel(tenant, agent, db):
    _, body = await tenant.post("/calls", {"to_number": "sip:bob@127.0.0.1", "agent_id": agent["id"]}, expect=201)
    call_id = body["data"]["id"]
    status, body = await tenant.post(f"/calls/{call_id}/cancel")
    assert status == 200
    call = body["data"]
    assert call["status"] == "canceled" and call["hangup_cause"] == "ORIGINATOR_CANCEL"
    assert call["disconnection_reason"] == "api_hangup" and call["ended_at"]
    assert (await tenant.post(f"/calls/{call_id}/cancel"))[0] == 409
    assert (await tenant.post(f"/calls/{call_id}/end"))[0] == 409
    events = await call_store.events(db, uuid.UUID(call_id))
    assert [e["status"] for e in events] == ["pending", "canceled"]
    status, body = await tenant.get(f"/calls/{call_id}/events")
    assert status == 200 and [(e["kind"], e["status"]) for e in body["data"]] == [
        ("status", "pending"), ("status", "canceled")]
    assert body["data"][0]["id"] < body["data"][1]["id"]
    names = [r["event"] for r in await db.fetch("SELECT event FROM outbox WHERE call_id = $1 ORDER BY id",
                                                uuid.UUID(call_id))]
    assert names == ["call_status", "call_status", "call_failed"], names  # each write with its outbox rows
    assert (await tenant.get(f"/calls/{uuid.uuid4()}/events"))[0] == 404

    _, body = await tenant.post("/calls", {"to_number": "sip:bob@127.0.0.1", "agent_id": agent["id"]}, expect=201)
    live_id = body["data"]["id"]
    await call_store.transition(db, uuid.UUID(live_id), "in_progress", allowed_from=("pending",),
                                answered_at=datetime.now(UTC) - timedelta(seconds=90))
    status, body = await tenant.post(f"/calls/{live_id}/cancel")
    assert status == 409
    status, body = await tenant.post(f"/calls/{live_id}/end", {"reason": "agent_hangup"})
    assert status == 200
    call = body["data"]
    assert call["status"] == "completed" and call["hangup_cause"] == "NORMAL_CLEARING"
    assert call["disconnection_reason"] == "agent_hangup"
    assert 89 <= call["duration_seconds"] <= 92 and call["duration_minutes"] == round(call["duration_seconds"] / 60, 2)


async def test_transcript_endpoint(tenant, agent, db):
    _, body = await tenant.post("/calls", {"to_number": "sip:bob@127.0.0.1", "agent_id": agent["id"]}, expect=201)
    call_id = uuid.UUID(body["data"]["id"])
    await call_store.add_turn(db, call_id, {"role": "agent", "content": "Hi!", "start_ms": 0, "end_ms": 900,
                                            "agent_name": "Support"})
    await call_store.add_turn(db, call_id, {"role": "user", "content": "Hello", "start_ms": 1200, "end_ms": 1800})
    status, body = await tenant.get(f"/calls/{call_id}/transcript")
    assert status == 200
    assert [(t["role"], t["content"]) for t in body["data"]] == [("agent", "Hi!"), ("user", "Hello")]
    assert body["data"][0]["agent_name"] == "Support" and body["data"][1]["start_ms"] == 1200


async def test_draining_server_refuses_new_calls(tenant, agent):
    from api.keys import CALLS

    tenant.client.app[CALLS].accepting = False
    status, body = await tenant.post("/calls", {"to_number": "sip:bob@127.0.0.1", "agent_id": agent["id"]})
    assert status == 503 and body["error"]["code"] == "unavailable"
    tenant.client.app[CALLS].accepting = True


async def test_end_of_a_call_live_on_another_worker_asks_that_worker(tenant, agent, db, monkeypatch):
    """The answering worker never marks another worker's live call ended: it asks through the row, the
    owner hangs up (here: a stand-in for worker w2's housekeeping loop ending its session), and the
    request answers with the final status; with no answer from the owner it is 202, the call untouched."""
    import asyncio

    from switchboard.calls import control, events

    monkeypatch.setattr(control, "END_WAIT", 2.0)

    async def live_on(worker: str) -> uuid.UUID:
        _, body = await tenant.post("/calls", {"to_number": "sip:bob@127.0.0.1", "agent_id": agent["id"]},
                                    expect=201)
        call_id = uuid.UUID(body["data"]["id"])
        await call_store.transition(db, call_id, "in_progress", allowed_from=("pending",), worker_id=worker,
                                    answered_at=datetime.now(UTC))
        return call_id

    async def worker_w2() -> None:  # what Telephony._housekeeping + the session's end do on w2
        while True:
            for req in await call_store.hangups_requested(db, "w2"):
                await events.transition(db, req["id"], "completed", allowed_from=("in_progress",),
                                        ended_at=datetime.now(UTC), hangup_cause="NORMAL_CLEARING",
                                        disconnection_reason=req["hangup_requested"])
            await asyncio.sleep(0.05)

    answered = await live_on("w2")
    owner = asyncio.create_task(worker_w2())
    try:
        status, body = await tenant.post(f"/calls/{answered}/end")
    finally:
        owner.cancel()
    assert status == 200 and body["data"]["status"] == "completed", body
    assert body["data"]["disconnection_reason"] == "api_hangup"

    silent = await live_on("w3")  # its worker does not answer (e.g. busy): nothing is faked
    status, body = await tenant.post(f"/calls/{silent}/end")
    assert status == 202 and body["data"]["status"] == "in_progress", body
    row = await db.fetchrow("SELECT * FROM calls WHERE id = $1", silent)
    assert row["hangup_requested"] == "api_hangup" and row["ended_at"] is None


async def test_ownerless_rows_expire(db):
    old = await db.fetchval("INSERT INTO calls (org_id, direction, status, to_number, created_at)"
                            " VALUES (NULL, 'inbound', 'failed', '+15550009404', now() - interval '8 days') RETURNING id")
    recent = await db.fetchval("INSERT INTO calls (org_id, direction, status, to_number)"
                               " VALUES (NULL, 'inbound', 'failed', '+15550009405') RETURNING id")
    assert await call_store.expire_ownerless(db, 7 * 86400) == 1
    left = {r["id"] for r in await db.fetch("SELECT id FROM calls WHERE org_id IS NULL")}
    assert left == {recent} and old not in left
