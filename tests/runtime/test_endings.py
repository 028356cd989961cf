"""Every way a call ends writes its final status and cause exactly once, with its outbox events.

(Real-SIP counterparts: tests/e2e/test_call_endings.py, test_outbound.py, test_durability.py.)
"""

from __future__ import annotations

import asyncio
from typing import Any

from api.control import EndOutcome
from sipcore.engine import HangupBy
from store import outbox
from switchboard.calls import OfflineCalls, events
from tests.runtime.conftest import Running, agent_config, silence, speech


async def history(call: Running) -> tuple[list[str], list[str]]:
    """(the call's status events, its outbox event names)."""
    db = call.deps.db
    statuses = [r["status"] for r in await db.fetch(
        "SELECT status FROM call_events WHERE call_id = $1 AND kind = 'status' ORDER BY id", call.id)]
    names = [r["event"] for r in await outbox.after(db, 0, call_id=call.id)]
    return statuses, names


async def assert_ended_once(call: Running, status: str, reason: str) -> dict[str, Any]:
    row = await call.ended(limit=20)
    assert (row["status"], row["disconnection_reason"]) == (status, reason), row
    statuses, names = await history(call)
    assert statuses == ["ringing", "in_progress", status], statuses
    assert names.count("call_status") == 3 and names.count("call_started") == 1, names
    assert names.count("call_completed" if row["answered_at"] else "call_failed") == 1, names
    return row


async def test_caller_bye(start_call):
    call = await start_call(agent_config(begin_message=None))
    await asyncio.sleep(0.3)
    call.call.remote_hangup()
    row = await assert_ended_once(call, "completed", "user_hangup")
    assert row["hangup_cause"] == "NORMAL_CLEARING" and row["error_message"] is None


async def test_api_end_of_a_live_call(start_call):
    control = OfflineCalls()
    call = await start_call(agent_config(begin_message=None))
    control.sessions[call.id] = call.session
    await asyncio.sleep(0.3)
    org_id = call.session.row["org_id"]
    assert await control.end(call.deps.db, org_id, call.id, "api_hangup", only_unanswered=False) is EndOutcome.ENDED
    await assert_ended_once(call, "completed", "api_hangup")
    again = await control.end(call.deps.db, org_id, call.id, "api_hangup", only_unanswered=False)
    assert again is EndOutcome.ALREADY_ENDED


async def test_api_end_racing_the_callers_bye_writes_one_final_status(start_call):
    control = OfflineCalls()
    call = await start_call(agent_config(begin_message=None))
    control.sessions[call.id] = call.session
    await asyncio.sleep(0.3)
    call.call.remote_hangup()
    outcome = await control.end(call.deps.db, call.session.row["org_id"], call.id, "api_hangup",
                                only_unanswered=False)
    assert outcome in (EndOutcome.ENDED, EndOutcome.ALREADY_ENDED)
    await assert_ended_once(call, "completed", "user_hangup")


async def test_dtmf_hangup_rule(start_call):
    call = await start_call(agent_config(begin_message=None, dtmf_rules=[{"digits": "9", "action": "hangup"}]))
    call.call.press("9")
    await assert_ended_once(call, "completed", "agent_hangup")
    kinds = [r["kind"] for r in await call.deps.db.fetch(
        "SELECT kind FROM call_events WHERE call_id = $1 ORDER BY id", call.id)]
    assert "dtmf_received" in kinds
    assert "dtmf_received" in (await history(call))[1]


async def test_inactivity_hangup(start_call):
    call = await start_call(agent_config(begin_message=None, inactivity_timeout_seconds=1.0))
    await assert_ended_once(call, "completed", "inactivity")


async def test_max_duration(start_call):
    call = await start_call(agent_config(begin_message=None, max_duration_seconds=1))
    await assert_ended_once(call, "completed", "max_duration_reached")


async def test_media_timeout(start_call, deps):
    deps.media.media_timeout = 1.0
    call = await start_call(agent_config(begin_message=None))
    call.call.stop_media()
    await assert_ended_once(call, "completed", "media_timeout")


async def test_engine_failure_of_the_leg(start_call):
    """The transport dropped the call (the engine's SYSTEM end: transport failure)."""
    call = await start_call(agent_config(begin_message=None))
    await asyncio.sleep(0.3)
    call.call._finish(HangupBy.SYSTEM)
    await assert_ended_once(call, "completed", "error")


async def test_drain_timeout_hangs_up_as_shutdown(start_call):
    call = await start_call(agent_config(begin_message=None))
    await asyncio.sleep(0.3)
    call.session.request_hangup("shutdown")  # what Telephony.drain does to calls still up at its timeout
    await assert_ended_once(call, "completed", "shutdown")


async def test_a_reply_cut_short_by_the_callers_hangup_keeps_what_was_heard(start_call):
    long = ("Thank you for calling Acme. Our opening hours are nine to five on weekdays. "
            "On Saturdays we open at ten and close at two. We are closed on Sundays and on public holidays. "
            "You can also reach us by email at any time.")
    call = await start_call(agent_config(begin_message=long))
    await asyncio.sleep(3.0)  # a few seconds of the greeting play
    call.call.remote_hangup()
    await assert_ended_once(call, "completed", "user_hangup")
    agent = [t for t in await call.turns() if t["role"] == "agent"]
    assert len(agent) == 1 and agent[0]["interrupted"], agent
    heard = agent[0]["content"]
    assert heard.startswith("Thank you for calling Acme.") and len(heard) < len(long), heard
    assert 2000 <= agent[0]["end_ms"] - agent[0]["start_ms"] <= 4000, agent[0]


async def test_events_are_published_to_subscribers_after_commit(start_call):
    seen: list[events.Event] = []
    unsubscribe = events.subscribe(seen.append)
    try:
        call = await start_call(agent_config(begin_message=None))
        call.call.say(silence(0.2))
        call.call.say(speech("hello"))
        await asyncio.sleep(0.3)
        call.call.remote_hangup()
        await call.ended()
    finally:
        unsubscribe()
    mine = [e for e in seen if e.call_id == call.id]
    names = [e.name for e in mine]
    assert names[:3] == ["call_status", "call_status", "call_started"], names  # ringing, then answered
    assert names[-2:] == ["call_status", "call_completed"], names
    final = mine[-1].payload
    assert (final["status"], final["previous_status"], final["disconnection_reason"]) == \
        ("completed", "in_progress", "user_hangup")
    assert final["call"]["call_id"] == str(call.id) and "agent_config" not in final["call"]
    stored = await outbox.after(call.deps.db, 0, call_id=call.id)
    assert [r["id"] for r in stored] == [e.id for e in mine]


async def test_transfer_rule_ends_as_transferred_with_its_event(start_call):
    call = await start_call(agent_config(begin_message=None, dtmf_rules=[
        {"digits": "2", "action": "transfer", "target": "sip:desk@127.0.0.1"}]))
    call.call.press("2")
    for _ in range(200):  # the REFER went out
        if call.call.transfers:
            break
        await asyncio.sleep(0.05)
    call.call.remote_hangup()  # the engine ends a transferred leg (NOTIFY 200 → BYE)
    await assert_ended_once(call, "completed", "transferred")
    statuses, names = await history(call)
    assert "transfer" in names and call.call.transfers == ["sip:desk@127.0.0.1"]
