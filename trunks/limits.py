"""Per-trunk calls-per-second pacing (a token bucket per trunk; channels are counted in the database)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class _Bucket:
    rate: float
    tokens: float
    stamp: float


@dataclass
class CpsLimiter:
    """``allow(trunk, cps)`` is True when a call may start now on that trunk (bursts of one second's worth)."""

    clock: Callable[[], float] = time.monotonic
    _buckets: dict[object, _Bucket] = field(default_factory=dict)

    def allow(self, trunk: object, cps: float | None) -> bool:
        if not cps:
            return True
        now = self.clock()
        bucket = self._buckets.get(trunk)
        burst = max(1.0, cps)
        if bucket is None or bucket.rate != cps:
            bucket = self._buckets[trunk] = _Bucket(cps, burst, now)
        bucket.tokens = min(burst, bucket.tokens + (now - bucket.stamp) * cps)
        bucket.stamp = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return True
        return False

    def forget(self, trunk: object) -> None:
        self._buckets.pop(trunk, None)
