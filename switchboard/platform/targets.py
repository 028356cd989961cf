"""Which URL an event goes to, and the JSON body it carries.

Two kinds of endpoint:
- the *status* endpoint gets ``call_status`` (every change), ``call_started``, ``call_completed`` and
  ``call_failed``: a level's ``call_status_webhook_url``, else its ``webhook_url``;
- the *post-call* endpoint gets ``call_analyzed`` (transcript, recording URL, metrics, cost, report):
  a level's ``post_call_webhook_url``, else its ``webhook_url``.
Levels are tried in order call > task > agent > organization; the first level with a URL decides (its
method and headers come with it). A level's event filter (a task's ``webhook_events``, the organization's
``webhook_events``) that leaves the event out means: no delivery for it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

STATUS_EVENTS = frozenset({"call_status", "call_started", "call_completed", "call_failed"})
POST_CALL_EVENTS = frozenset({"call_analyzed"})
WEBHOOK_EVENTS = STATUS_EVENTS | POST_CALL_EVENTS
ENDED = frozenset({"completed", "failed", "no_answer", "busy", "canceled"})


@dataclass(frozen=True)
class Target:
    url: str
    method: str = "POST"
    headers: list[dict[str, str]] = field(default_factory=list)
    source: str = "agent"


def _level_target(level: Mapping[str, Any] | None, source: str, event: str) -> Target | None | bool:
    """This level's target for ``event``; None when the level has no URL for it; False when it has one
    but its event filter excludes the event (stop: no delivery)."""
    if not level:
        return None
    kind = "call_status" if event in STATUS_EVENTS else "post_call"
    specific = level.get(f"{kind}_webhook_url")
    if specific:
        return Target(specific, (level.get(f"{kind}_webhook_method") or "POST").upper(),
                      list(level.get(f"{kind}_webhook_headers") or []), source)
    general = level.get("webhook_url")
    if general:
        events = level.get("webhook_events")
        if events is not None and event not in events:
            return False
        return Target(general, "POST", [], source)
    return None


def resolve(event: str, *, call: Mapping[str, Any] | None, task: Mapping[str, Any] | None,
            agent: Mapping[str, Any] | None, org: Mapping[str, Any] | None) -> Target | None:
    if event not in WEBHOOK_EVENTS:
        return None
    call_level = (call or {}).get("webhooks") if call else None
    for level, source in ((call_level, "call"), (task, "task"), (agent, "agent"), (org, "organization")):
        found = _level_target(level, source, event)
        if found is False:
            return None
        if found is not None:
            return found  # type: ignore[return-value]
    return None


def iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value is not None else None


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(value: Any) -> str:
    return json.dumps(value, default=_default, separators=(",", ":"), ensure_ascii=False)


def recording_url(base_url: str, call: Mapping[str, Any]) -> str | None:
    return f"{base_url}/api/v1/calls/{call['id']}/recording" if call.get("recording_path") else None


def call_view(call: Mapping[str, Any], base_url: str) -> dict[str, Any]:
    """The call as webhooks show it (the API's call object, without transcript)."""
    seconds = None
    if call.get("answered_at") is not None and call.get("ended_at") is not None:
        seconds = int((call["ended_at"] - call["answered_at"]).total_seconds())
    return {
        "call_id": call["id"], "status": call["status"], "direction": call["direction"],
        "to_number": call["to_number"], "from_number": call.get("from_number"), "agent_id": call.get("agent_id"),
        "agent": call.get("agent_name"), "trunk_id": call.get("trunk_id"), "number_id": call.get("number_id"),
        "started_at": call.get("started_at"), "answered_at": call.get("answered_at"), "ended_at": call.get("ended_at"),
        "duration_seconds": seconds, "duration_minutes": round(seconds / 60, 2) if seconds is not None else None,
        "cost": call.get("cost"), "hangup_cause": call.get("hangup_cause"),
        "disconnection_reason": call.get("disconnection_reason"), "sip_call_id": call.get("sip_call_id"),
        "recording_url": recording_url(base_url, call), "metadata": call.get("metadata") or {},
    }


def transcript_view(turns: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{"role": t["role"], "content": t["content"], "timestamp": t["created_at"], "start_ms": t["start_ms"],
             "end_ms": t["end_ms"], "agent_name": t["agent_name"], "tool_call": t["tool_call"],
             "interrupted": t["interrupted"]} for t in turns]


def event_data(event: str, payload: Mapping[str, Any], call: Mapping[str, Any] | None, base_url: str,
               transcript: list[Mapping[str, Any]] | None = None, report: Mapping[str, Any] | None = None
               ) -> dict[str, Any]:
    if event == "call_status":
        light = {k: v for k, v in payload.items() if k != "call"}
        if call is not None:
            light.setdefault("call_id", call["id"])
            for key in ("direction", "to_number", "from_number", "agent_id"):
                light.setdefault(key, call.get(key))
        return light
    data: dict[str, Any] = {"call": call_view(call, base_url) if call is not None else payload.get("call")}
    if event == "call_analyzed" and call is not None:
        data.update({
            "transcript": transcript_view(list(transcript or [])),
            "recording_url": recording_url(base_url, call),
            "metrics": call.get("metrics") or {},
            "cost": call.get("cost"),
            "report": report if report is not None else payload.get("report"),
        })
    return data


def body(event: str, event_id: str, occurred_at: datetime, call_id: Any, data: Mapping[str, Any],
         task_id: Any = None) -> str:
    envelope: dict[str, Any] = {"event_id": event_id, "event": event, "event_type": event,
                                "created_at": occurred_at, "call_id": call_id, "data": data}
    if task_id is not None:
        envelope["task_id"] = task_id
    return dumps(envelope)
