"""Per-key request limits: a fixed one-minute window per API key (per worker process)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass


@dataclass
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset_at: int  # unix seconds when the window resets

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_at),
        }


class RateLimiter:
    def __init__(self, limit_per_minute: int, window_seconds: float = 60.0, clock=time.time) -> None:
        self.limit = limit_per_minute
        self.window = window_seconds
        self.clock = clock
        self._windows: dict[object, tuple[float, int]] = {}

    def hit(self, key: object) -> Verdict:
        now = self.clock()
        start = math.floor(now / self.window) * self.window
        window_start, count = self._windows.get(key, (start, 0))
        if window_start != start:
            window_start, count = start, 0
            if len(self._windows) > 100_000:  # forget stale windows now and then
                self._windows = {k: v for k, v in self._windows.items() if v[0] == start}
        reset_at = int(window_start + self.window)
        if count >= self.limit:
            return Verdict(False, self.limit, 0, reset_at)
        count += 1
        self._windows[key] = (window_start, count)
        return Verdict(True, self.limit, self.limit - count, reset_at)
