"""Recording storage policy (issue 9.4): a quota per organization and a retention period enforced by the
janitor, seen through the API. Real PostgreSQL, real files, real HTTP requests."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from store import calls as call_store
from switchboard import retention
from switchboard.retention import RecordingJanitor, RecordingPolicy, may_record
from switchboard.server import JANITOR
from tests.api.conftest import Tenant


async def ended_call(tenant: Tenant, agent: dict[str, Any], db, directory: Path, *, size: int,
                     ended_days_ago: float = 0.0) -> tuple[uuid.UUID, Path]:
    _, body = await tenant.post("/calls", {"to_number": "sip:bob@127.0.0.1", "agent_id": agent["id"]}, expect=201)
    call_id = uuid.UUID(body["data"]["id"])
    path = directory / str(tenant.org_id) / f"{call_id}.wav"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * size)
    ended = datetime.now(UTC) - timedelta(days=ended_days_ago)
    await call_store.transition(db, call_id, "in_progress", allowed_from=("pending",), recording_path=str(path),
                                answered_at=ended - timedelta(seconds=30))
    await call_store.transition(db, call_id, "completed", allowed_from=("in_progress",), ended_at=ended)
    return call_id, path


async def test_over_quota_a_new_call_is_not_recorded_and_the_call_says_so(tenant: Tenant, other: Tenant,
                                                                          agent: dict[str, Any], db,
                                                                          tmp_path: Path) -> None:
    policy = RecordingPolicy(quota_mb=1)
    await ended_call(tenant, agent, db, tmp_path, size=600_000)
    _, body = await tenant.post("/calls", {"to_number": "sip:bob@127.0.0.1", "agent_id": agent["id"]}, expect=201)
    new_call = uuid.UUID(body["data"]["id"])
    assert await may_record(db, tenant.org_id, new_call, policy=policy)  # 0.6 MB of 1 MB
    await ended_call(tenant, agent, db, tmp_path, size=600_000)
    assert not await may_record(db, tenant.org_id, new_call, policy=policy)  # 1.2 MB: full
    _, shown = await tenant.get(f"/calls/{new_call}", expect=200)
    assert shown["data"]["recording_status"] == "skipped_quota" and shown["data"]["recording_url"] is None
    # a recording still being written counts with its current size
    _, body = await tenant.post("/calls", {"to_number": "sip:bob@127.0.0.1", "agent_id": agent["id"]}, expect=201)
    live_call = uuid.UUID(body["data"]["id"])
    live_file = tmp_path / str(other.org_id) / f"{live_call}.wav"
    live_file.parent.mkdir(parents=True, exist_ok=True)
    live_file.write_bytes(b"\0" * 1_100_000)
    await db.execute("UPDATE calls SET org_id = $1, status = 'in_progress', recording_path = $2 WHERE id = $3",
                     other.org_id, str(live_file), live_call)
    assert not await may_record(db, other.org_id, None, policy=policy)
    live_file.write_bytes(b"\0" * 1000)
    assert await may_record(db, other.org_id, None, policy=policy)
    # the quota is per organization, and 0 means none
    assert await may_record(db, tenant.org_id, None, policy=RecordingPolicy(quota_mb=0))


async def test_the_janitor_deletes_recordings_past_retention(tenant: Tenant, agent: dict[str, Any], db,
                                                             tmp_path: Path) -> None:
    old_call, old_file = await ended_call(tenant, agent, db, tmp_path, size=1000, ended_days_ago=31)
    new_call, new_file = await ended_call(tenant, agent, db, tmp_path, size=1000, ended_days_ago=29)
    stray_old = tmp_path / str(tenant.org_id) / f"{uuid.uuid4()}.wav"
    stray_new = tmp_path / str(tenant.org_id) / f"{uuid.uuid4()}.wav"
    for stray in (stray_old, stray_new):
        stray.write_bytes(b"\0" * 10)
    month_ago = time.time() - 31 * 86400
    os.utime(stray_old, (month_ago, month_ago))
    os.utime(old_file, (month_ago, month_ago))

    janitor = RecordingJanitor(db, tmp_path, RecordingPolicy(retention_days=30))
    done = await janitor.run_once()
    assert done == {"deleted": 1, "stray": 1, "measured": 1}
    assert not old_file.exists() and not stray_old.exists()
    assert new_file.exists() and stray_new.exists()
    _, old = await tenant.get(f"/calls/{old_call}", expect=200)
    assert old["data"]["recording_url"] is None and old["data"]["recording_status"] == "deleted_retention"
    await tenant.get(f"/calls/{old_call}/recording", expect=404)
    _, new = await tenant.get(f"/calls/{new_call}", expect=200)
    assert new["data"]["recording_url"] and new["data"]["recording_status"] is None
    assert await janitor.run_once() == {"deleted": 0, "stray": 0, "measured": 0}
    # retention 0 keeps everything
    assert (await RecordingJanitor(db, tmp_path, RecordingPolicy()).run_once())["deleted"] == 0
    assert new_file.exists()


async def test_the_server_runs_the_janitor_with_its_settings(client, settings) -> None:
    janitor = client.app[JANITOR]
    assert janitor.policy == RecordingPolicy(settings.recording_quota_mb, settings.recording_retention_days)
    assert retention.current_policy() == janitor.policy
    deadline = time.monotonic() + 10
    while janitor.passes < 1:  # the first pass runs at start
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
