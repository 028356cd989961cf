"""Recording storage policy: a quota per organization and a retention period.

- Quota (``SWITCHBOARD_RECORDING_QUOTA_MB``, default 10240 per organization; 0 = no quota): when an
  organization's recordings already take the quota, a newly answered call is not recorded and carries
  ``recording_status = 'skipped_quota'``. The session asks ``await may_record(db, org_id, call_id)`` when
  it decides to record. The check counts the organization's ended recordings (measured once, when first
  needed) and the current size of those still being written, so the quota is overshot by at most what
  the calls already recording write after the check.
- Retention (``SWITCHBOARD_RECORDING_RETENTION_DAYS``, default 0 = keep forever): ``RecordingJanitor``
  runs every ``interval`` seconds (started by ``switchboard.server``, owned by a ``TaskSet``): it deletes
  the recordings of calls that ended more than that many days ago, clears their paths
  (``recording_status = 'deleted_retention'``), deletes stray WAV files that old which no call points
  at, and measures recordings not yet measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from store import recordings as rec_store
from store.types import DB

from .tasks import TaskSet

log = logging.getLogger(__name__)
MB = 1024 * 1024


@dataclass(frozen=True)
class RecordingPolicy:
    quota_mb: int = 10240  # per organization; 0 = unlimited
    retention_days: int = 0  # 0 = keep forever

    @property
    def quota_bytes(self) -> int | None:
        return self.quota_mb * MB if self.quota_mb > 0 else None


_policy = RecordingPolicy()


def configure(policy: RecordingPolicy) -> None:
    """The process-wide policy (the server sets it from its settings at start)."""
    global _policy
    _policy = policy


def current_policy() -> RecordingPolicy:
    return _policy


def _sizes(paths: list[tuple[UUID, str]]) -> list[tuple[UUID, int]]:
    """Blocking: each file's size (0 when it is gone)."""
    out = []
    for call_id, path in paths:
        try:
            out.append((call_id, os.stat(path).st_size))
        except OSError:
            out.append((call_id, 0))
    return out


async def measure(db: DB, org_id: UUID | None = None, limit: int = 500) -> int:
    """Record the size of ended calls' recordings not yet measured; returns how many were measured."""
    pending = await rec_store.unmeasured(db, org_id, limit)
    if not pending:
        return 0
    sizes = await asyncio.get_running_loop().run_in_executor(
        None, _sizes, [(r["id"], r["recording_path"]) for r in pending])
    await rec_store.set_sizes(db, sizes)
    return len(sizes)


async def may_record(db: DB, org_id: UUID | None, call_id: UUID | None = None, *,
                     policy: RecordingPolicy | None = None) -> bool:
    """Whether a call of this organization may be recorded now. False when its recordings already take
    its quota; then the call (``call_id``) is marked ``recording_status = 'skipped_quota'``."""
    quota = (policy or _policy).quota_bytes
    if quota is None or org_id is None:
        return True
    await measure(db, org_id)
    used = await rec_store.usage_bytes(db, org_id)
    live = await rec_store.being_written(db, org_id)
    if live:
        sizes = await asyncio.get_running_loop().run_in_executor(None, _sizes, [(org_id, p) for p in live])
        used += sum(size for _, size in sizes)
    if used < quota:
        return True
    log.warning("organization %s: recordings take %.1f MB of its %.0f MB quota: call %s is not recorded",
                org_id, used / MB, quota / MB, call_id)
    if call_id is not None:
        await rec_store.mark_skipped(db, call_id)
    return False


def _unlink(paths: list[str]) -> None:
    """Blocking: delete files (already gone is fine)."""
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _stray_files(root: Path, older_than: float) -> list[tuple[UUID, str]]:
    """Blocking: WAV files under ``root`` named after a call id and last written before ``older_than``."""
    found: list[tuple[UUID, str]] = []
    if not root.is_dir():
        return found
    for org_dir in root.iterdir():
        if not org_dir.is_dir():
            continue
        with os.scandir(org_dir) as entries:
            for entry in entries:
                if not entry.name.endswith(".wav") or not entry.is_file():
                    continue
                try:
                    call_id = UUID(entry.name[:-4])
                    if entry.stat().st_mtime < older_than:
                        found.append((call_id, entry.path))
                except (ValueError, OSError):
                    continue
                if len(found) >= 1000:
                    return found
    return found


class RecordingJanitor:
    def __init__(self, db: DB, recordings_dir: Path, policy: RecordingPolicy, *, interval: float = 900.0) -> None:
        self.db = db
        self.recordings_dir = recordings_dir
        self.policy = policy
        self.interval = interval
        self._tasks = TaskSet()
        self.passes = 0

    def start(self) -> None:
        self._tasks.spawn(self._loop(), "recording-janitor")

    async def stop(self) -> None:
        await self._tasks.close()

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("recording janitor: pass failed")
            await asyncio.sleep(self.interval)

    async def run_once(self, now: datetime | None = None) -> dict[str, Any]:
        """One pass: delete what retention expires, then measure. Returns what was done."""
        done = {"deleted": 0, "stray": 0, "measured": 0}
        if self.policy.retention_days > 0:
            cutoff = (now or datetime.now(UTC)) - timedelta(days=self.policy.retention_days)
            done["deleted"] = await self._expire(cutoff)
            done["stray"] = await self._strays(cutoff)
        while (n := await measure(self.db)) > 0:
            done["measured"] += n
            if n < 500:
                break
        self.passes += 1
        if done["deleted"] or done["stray"]:
            log.info("recording janitor: %d recording(s) past %d days deleted, %d stray file(s)",
                     done["deleted"], self.policy.retention_days, done["stray"])
        return done

    async def _expire(self, cutoff: datetime) -> int:
        loop = asyncio.get_running_loop()
        total = 0
        while batch := await rec_store.expired(self.db, cutoff):
            await loop.run_in_executor(None, _unlink, [r["recording_path"] for r in batch])
            await rec_store.clear(self.db, [r["id"] for r in batch])
            total += len(batch)
        return total

    async def _strays(self, cutoff: datetime) -> int:
        loop = asyncio.get_running_loop()
        files = await loop.run_in_executor(None, _stray_files, self.recordings_dir,
                                           time.time() - (datetime.now(UTC) - cutoff).total_seconds())
        if not files:
            return 0
        kept = await rec_store.referenced(self.db, [call_id for call_id, _ in files])
        stray = [path for call_id, path in files if call_id not in kept]
        await loop.run_in_executor(None, _unlink, stray)
        return len(stray)
