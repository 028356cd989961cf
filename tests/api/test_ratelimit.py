"""Rate limits that hold (issue 9.7): no double burst around a minute boundary, and failed authentication
limited per source address. Real HTTP requests against the real application; the limiter's clock is
moved by the test instead of waiting a minute."""

from __future__ import annotations

import random

import aiohttp

from api.keys import AUTH_FAILURES, LIMITER
from api.ratelimit import FailureLimiter, RateLimiter
from tests.api.conftest import Tenant


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_never_more_than_the_limit_in_any_window() -> None:
    """Random traffic, heavy around window boundaries: for every accepted request, the accepted ones in
    the 60 s ending at it are at most the limit."""
    clock = Clock(0.0)
    limiter = RateLimiter(100, clock=clock, wall=clock)
    rng = random.Random(7)
    accepted: list[float] = []
    for _ in range(20_000):
        clock.t += rng.choice([0.0, 0.001, 0.01, 0.5, 3.0])
        if limiter.hit("k").allowed:
            accepted.append(clock.t)
    assert len(accepted) > 1000
    j = 0
    for i, t in enumerate(accepted):
        while accepted[j] <= t - 60.0:
            j += 1
        assert i - j + 1 <= 100


def test_headers_count_the_window() -> None:
    clock = Clock(1000.0)
    limiter = RateLimiter(3, clock=clock, wall=clock)
    first = limiter.hit("k")
    assert (first.allowed, first.remaining, first.reset_at) == (True, 2, 1060)
    clock.t = 1030.0
    assert limiter.hit("k").remaining == 1 and limiter.hit("k").remaining == 0
    denied = limiter.hit("k")
    assert not denied.allowed and denied.reset_at == 1060 and denied.retry_after(1030.0) == 30
    clock.t = 1060.0
    ok = limiter.hit("k")
    assert ok.allowed and ok.remaining == 0 and ok.reset_at == 1090  # the two from 1030 are still inside


async def test_no_double_burst_across_a_minute_boundary(tenant: Tenant) -> None:
    """The fixed per-minute window let 2 × limit through in seconds (59.9 s, then 60.1 s)."""
    limiter = tenant.client.app[LIMITER]
    limiter.limit = 100
    clock = Clock(59.9)
    limiter.clock = limiter.wall = clock

    async def burst(n: int) -> list[int]:
        statuses = []
        for _ in range(n):
            resp = await tenant.client.get("/api/v1/agents", headers=tenant.headers)
            statuses.append(resp.status)
            resp.release()
        return statuses

    assert await burst(100) == [200] * 100
    clock.t = 60.1  # a new calendar minute
    assert set(await burst(100)) == {429}
    clock.t = 119.89
    resp = await tenant.client.get("/api/v1/agents", headers=tenant.headers)
    assert resp.status == 429 and resp.headers["Retry-After"] == "1" and resp.headers["X-RateLimit-Reset"] == "120"
    clock.t = 119.91  # 60 s after the first burst
    assert await burst(100) == [200] * 100
    assert set(await burst(5)) == {429}


async def test_failed_authentication_is_limited_per_source(tenant: Tenant, client) -> None:
    """1,500 wrong keys got 1,500 × 401 in under a second: now 429 after a small burst, for the source
    only; a correct key from that source waits too (no oracle for a brute force)."""
    failures: FailureLimiter = client.app[AUTH_FAILURES]
    clock = Clock(0.0)
    failures.clock = clock
    statuses = []
    for i in range(1500):
        resp = await client.get("/api/v1/agents", headers={"Authorization": f"Bearer sb_wrong{i}"})
        statuses.append(resp.status)
        resp.release()
    assert statuses[: failures.burst] == [401] * failures.burst
    assert set(statuses[failures.burst:]) == {429}
    resp = await client.get("/api/v1/agents", headers=tenant.headers)
    assert resp.status == 429 and int(resp.headers["Retry-After"]) >= 1
    body = await resp.json()
    assert body["error"]["code"] == "rate_limited"
    resp = await client.get("/api/v1/agents")  # no key at all: the same
    assert resp.status == 429
    # another source is not affected
    url = str(client.make_url("/api/v1/agents"))
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(connector=connector) as other_source, \
            other_source.get(url, headers=tenant.headers) as resp:
        assert resp.status == 200
    # the bucket refills: one more try after 60 / per_minute seconds
    clock.t += 60.0 / 30.0 + 0.01
    resp = await client.get("/api/v1/agents", headers=tenant.headers)
    assert resp.status == 200
    resp = await client.get("/api/v1/agents", headers={"Authorization": "Bearer sb_wrong"})
    assert resp.status == 401
    resp = await client.get("/api/v1/agents", headers={"Authorization": "Bearer sb_wrong"})
    assert resp.status == 429


def test_failure_limiter_stays_bounded() -> None:
    clock = Clock(0.0)
    limiter = FailureLimiter(burst=2, per_minute=60, clock=clock, max_sources=1000)
    for i in range(5000):
        limiter.failed(f"10.0.{i // 256}.{i % 256}")
    assert len(limiter._buckets) <= 1000


def test_memory_follows_the_traffic_not_the_limit() -> None:
    """An operator may set a huge limit (the API fuzz test uses 10**9): nothing is sized by the limit."""
    import tracemalloc

    tracemalloc.start()
    limiter = RateLimiter(10**9)
    verdicts = [limiter.hit("k") for _ in range(1000)]
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert all(v.allowed for v in verdicts) and verdicts[-1].remaining == 10**9 - 1000
    assert peak < 1_000_000
