"""The session asks the recording policy before it records (issue 9.4): over the organization's quota, an
answered call runs without a recording and says why; under it, the call is recorded."""

from __future__ import annotations

import pytest

from store import orgs
from switchboard import retention
from switchboard.retention import RecordingPolicy
from tests.runtime.conftest import agent_config


async def test_a_call_over_quota_is_not_recorded(start_call, deps, monkeypatch: pytest.MonkeyPatch) -> None:
    org, _ = await orgs.get_or_create_org(deps.db, "runtime")
    full = deps.recordings_dir / "earlier.wav"
    full.write_bytes(b"\0" * 1_100_000)
    await deps.db.execute(
        "INSERT INTO calls (org_id, direction, status, to_number, recording_path, ended_at)"
        " VALUES ($1, 'inbound', 'completed', '+15550001111', $2, now())", org["id"], str(full))
    monkeypatch.setattr(retention, "_policy", RecordingPolicy(quota_mb=1))
    call = await start_call(agent_config(begin_message=None, max_duration_seconds=1))
    row = await call.ended(limit=10)
    assert row["status"] == "completed"
    assert row["recording_path"] is None and row["recording_status"] == "skipped_quota"
    assert not (deps.recordings_dir / str(org["id"]) / f"{call.id}.wav").exists()

    monkeypatch.setattr(retention, "_policy", RecordingPolicy(quota_mb=2))
    call = await start_call(agent_config(begin_message=None, max_duration_seconds=1))
    row = await call.ended(limit=10)
    assert row["recording_path"] and row["recording_status"] is None
    assert (deps.recordings_dir / str(org["id"]) / f"{call.id}.wav").stat().st_size > 44
