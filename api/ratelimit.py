"""Request limits (per worker process).

``RateLimiter``: per API key, a sliding window that holds — at most ``limit`` requests in ANY
``window`` seconds (not per calendar minute: a fixed window let 2 × limit through around a minute
boundary). It keeps the times of the last ``limit`` accepted requests of each key in a ring (8 bytes
each); a request is accepted when the oldest of them is more than ``window`` seconds old. Worst case:
``limit`` requests at once after a quiet window, and never more than ``limit`` in any window.

``FailureLimiter``: per source address, a token bucket for failed authentication — ``burst`` failures at
once, then ``per_minute`` a minute; a source with no tokens left gets 429 before its key is even looked
up (brute force and key-spraying cost the database nothing).
"""

from __future__ import annotations

import math
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset_at: int  # unix seconds when the next request slot frees up

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_at),
        }

    def retry_after(self, now: float | None = None) -> int:
        return max(1, self.reset_at - int(time.time() if now is None else now))


class _Ring:
    __slots__ = ("times", "head", "count")

    def __init__(self, size: int) -> None:
        self.times = array("d", bytes(8 * size))
        self.head = 0  # index of the oldest stored time
        self.count = 0

    def oldest(self) -> float:
        return self.times[self.head]

    def newest(self) -> float:
        return self.times[(self.head + self.count - 1) % len(self.times)]

    def push(self, t: float) -> None:
        size = len(self.times)
        if self.count < size:
            self.times[(self.head + self.count) % size] = t
            self.count += 1
        else:
            self.times[self.head] = t
            self.head = (self.head + 1) % size

    def in_window(self, since: float) -> tuple[int, float | None]:
        """How many stored times are after ``since``, and the oldest of those."""
        size, times, head = len(self.times), self.times, self.head
        lo, hi = 0, self.count  # binary search over the ring in logical (oldest-first) order
        while lo < hi:
            mid = (lo + hi) // 2
            if times[(head + mid) % size] <= since:
                lo = mid + 1
            else:
                hi = mid
        inside = self.count - lo
        return inside, (times[(head + lo) % size] if inside else None)


class RateLimiter:
    def __init__(self, limit_per_minute: int, window_seconds: float = 60.0,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self.window = window_seconds
        self.clock, self.wall = clock, wall
        self._rings: dict[object, _Ring] = {}
        self._next_sweep = 0.0
        self.limit = limit_per_minute

    @property
    def limit(self) -> int:
        return self._limit

    @limit.setter
    def limit(self, value: int) -> None:
        self._limit = max(1, int(value))
        self._rings.clear()

    def hit(self, key: object) -> Verdict:
        now = self.clock()
        self._sweep(now)
        ring = self._rings.get(key)
        if ring is None:
            ring = self._rings[key] = _Ring(self.limit)
        since = now - self.window
        if ring.count < self.limit or ring.oldest() <= since:
            ring.push(now)
            inside, oldest = ring.in_window(since)
            return Verdict(True, self.limit, self.limit - inside, self._unix(oldest + self.window if oldest else now))
        return Verdict(False, self.limit, 0, self._unix(ring.oldest() + self.window))

    def _unix(self, monotonic_t: float) -> int:
        return math.ceil(self.wall() + (monotonic_t - self.clock()))

    def _sweep(self, now: float) -> None:
        """Now and then, forget keys idle for a whole window."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.window
        idle = now - self.window
        self._rings = {k: r for k, r in self._rings.items() if r.count and r.newest() > idle}


class FailureLimiter:
    """Token bucket per source: ``burst`` failures at once, refilled at ``per_minute`` a minute."""

    def __init__(self, burst: int = 10, per_minute: float = 30.0, clock: Callable[[], float] = time.monotonic,
                 max_sources: int = 100_000) -> None:
        self.burst = max(1, burst)
        self.rate = per_minute / 60.0
        self.clock = clock
        self.max_sources = max_sources
        self._buckets: dict[str, tuple[float, float]] = {}  # source → (tokens, at)

    def _tokens(self, source: str, now: float) -> float:
        tokens, at = self._buckets.get(source, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - at) * self.rate)

    def blocked(self, source: str) -> float | None:
        """Seconds until this source may try again, or None when it may try now."""
        now = self.clock()
        tokens = self._tokens(source, now)
        if tokens >= 1.0:
            return None
        return (1.0 - tokens) / self.rate if self.rate > 0 else 3600.0

    def failed(self, source: str) -> None:
        now = self.clock()
        tokens = self._tokens(source, now)
        if len(self._buckets) >= self.max_sources and source not in self._buckets:
            self._prune(now)
        self._buckets[source] = (max(0.0, tokens - 1.0), now)

    def _prune(self, now: float) -> None:
        """Forget sources whose bucket has refilled (they are as if new); if still full, the fullest half."""
        self._buckets = {s: v for s, v in self._buckets.items() if self._tokens(s, now) < self.burst}
        if len(self._buckets) >= self.max_sources:
            ordered = sorted(self._buckets.items(), key=lambda kv: self._tokens(kv[0], now))
            self._buckets = dict(ordered[: self.max_sources // 2])
