"""Protection against SIP scanners and floods (pure, loop-free logic).

What the baresip engine lets us apply it to: inbound INVITEs only (their
User-Agent and Via are visible on the incoming-call event). OPTIONS and
REGISTER are answered inside the native stack and never reach Python; see
the engine docs for the front-filter workaround.
"""

from __future__ import annotations

import ipaddress
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


class FailureTracker:
    """Per-source count of failed INVITEs; a source reaching ``threshold`` is blocked for ``block_s``.

    A failure is an INVITE the engine refused (scanner, rate limit, unroutable…) or one the stack itself
    rejected as malformed. A call that gets answered resets its source's count. Bounded like
    :class:`RateLimiter`.
    """

    def __init__(self, threshold: int, block_s: float, *, exempt: Iterable[str] = (), max_keys: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = max(1, threshold)
        self._exempt = tuple(ipaddress.ip_network(c, strict=False) for c in exempt)
        self.block_s = block_s
        self._max_keys = max_keys
        self._clock = clock
        self._failures: OrderedDict[str, int] = OrderedDict()
        self._blocked: OrderedDict[str, float] = OrderedDict()

    def blocked(self, key: str | None) -> bool:
        if key is None:
            return False
        until = self._blocked.get(key)
        if until is None:
            return False
        if self._clock() >= until:
            del self._blocked[key]
            return False
        return True

    def _is_exempt(self, key: str) -> bool:
        try:
            addr = ipaddress.ip_address(key)
        except ValueError:
            return False
        return any(addr in net for net in self._exempt)

    def failed(self, key: str | None) -> bool:
        """Count a failure; True when this one blocks the source."""
        if key is None or self._is_exempt(key):
            return False
        count = self._failures.pop(key, 0) + 1
        if count >= self.threshold:
            self._blocked[key] = self._clock() + self.block_s
            self._blocked.move_to_end(key)
            while len(self._blocked) > self._max_keys:
                self._blocked.popitem(last=False)
            return True
        self._failures[key] = count
        while len(self._failures) > self._max_keys:
            self._failures.popitem(last=False)
        return False

    def succeeded(self, key: str | None) -> None:
        if key is not None:
            self._failures.pop(key, None)

    @property
    def blocked_count(self) -> int:
        now = self._clock()
        return sum(1 for until in self._blocked.values() if until > now)
