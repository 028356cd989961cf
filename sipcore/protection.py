"""Protection against SIP scanners and floods (pure, loop-free logic).

What the baresip engine lets us apply it to: inbound INVITEs only (their
User-Agent and Via are visible on the incoming-call event). OPTIONS and
REGISTER are answered inside the native stack and never reach Python; see
the engine docs for the front-filter workaround.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable


class ScannerFilter:
    """Matches User-Agent values of known SIP scanners (case-insensitive substrings)."""

    def __init__(self, needles: Iterable[str]) -> None:
        self._needles = tuple(n.lower() for n in needles if n)

    def is_scanner(self, user_agent: str | None) -> bool:
        if not user_agent:
            return False
        ua = user_agent.lower()
        return any(n in ua for n in self._needles)


class RateLimiter:
    """Token bucket per key (a source address), bounded in memory.

    ``allow(key)`` takes one token; a bucket refills at ``rate`` per second
    up to ``burst``. At most ``max_keys`` buckets are kept (least recently
    used evicted), so a spoofed-source flood cannot grow memory.
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self.denied = 0

    def allow(self, key: str) -> bool:
        now = self._clock()
        tokens, last = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        ok = tokens >= 1.0
        if ok:
            tokens -= 1.0
        else:
            self.denied += 1
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return ok
