"""Request limits (per worker process).

``RateLimiter``: per API key, a sliding window that holds — at most ``limit`` requests in ANY
``window`` seconds (not per calendar minute: a fixed window let 2 × limit through around a minute
boundary). It keeps the times of each key's accepted requests of the last ``window`` (a sliding log:
memory follows the traffic, at most ``limit`` entries per key); a request is accepted while fewer than
``limit`` are inside. Worst case: ``limit`` requests at once after a quiet window, and never more than
``limit`` in any window.

``FailureLimiter``: per source address, a token bucket for failed authentication — ``burst`` failures at
once, then ``per_minute`` a minute; a source with no tokens left gets 429 before its key is even looked
up (brute force and key-spraying cost the database nothing).
"""

from __future__ import annotations

import math
import time
from collections import deque
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


class RateLimiter:
    def __init__(self, limit_per_minute: int, window_seconds: float = 60.0,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self.window = window_seconds
        self.clock, self.wall = clock, wall
        self._logs: dict[object, deque[float]] = {}
        self._next_sweep = 0.0
        self.limit = limit_per_minute

    @property
    def limit(self) -> int:
        return self._limit

    @limit.setter
    def limit(self, value: int) -> None:
        self._limit = max(1, int(value))
        self._logs.clear()

    def hit(self, key: object) -> Verdict:
        now = self.clock()
        self._sweep(now)
        log = self._logs.get(key)
        if log is None:
            log = self._logs[key] = deque()
        since = now - self.window
        while log and log[0] <= since:
            log.popleft()
        if len(log) >= self.limit:
            return Verdict(False, self.limit, 0, self._unix(log[0] + self.window))
        log.append(now)
        return Verdict(True, self.limit, self.limit - len(log), self._unix(log[0] + self.window))

    def _unix(self, monotonic_t: float) -> int:
        return math.ceil(self.wall() + (monotonic_t - self.clock()))

    def _sweep(self, now: float) -> None:
        """Now and then, forget keys idle for a whole window."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.window
        idle = now - self.window
        self._logs = {k: log for k, log in self._logs.items() if log and log[-1] > idle}


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
