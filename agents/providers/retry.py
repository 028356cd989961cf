"""Retrying a provider within a turn's latency budget, and never once output has been produced.

A voice turn cannot wait long: a transient failure (rate limit, 5xx, dropped connection) is worth one or two
quick retries, but only while nothing has come out yet. Once the first audio chunk (or transcript) has been
produced, a retry would repeat it — the caller would hear the start of the sentence twice — so a failure
after output is final and is re-raised with `retryable=False`.

`RetryPolicy` decides whether and when to try again; `call_with_retry` wraps one request/response call,
`stream_with_retry` wraps an async generator (a synthesis). Stream-shaped providers that own a connection
(Deepgram) use `RetryPolicy.delay()` directly.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from .base import ProviderError

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """`retries` extra attempts after the first, waiting `backoff[i]` before retry i+1 (the last value
    repeats); no retry starts later than `budget_s` after the first attempt began."""

    retries: int = 2
    backoff: tuple[float, ...] = (0.15, 0.4)
    budget_s: float = 2.5

    def delay(self, attempt: int, elapsed: float) -> float | None:
        """Seconds to wait before retry number `attempt` (1-based), given the seconds `elapsed` since the
        first attempt began; None when the policy gives up."""
        if attempt > self.retries:
            return None
        wait = self.backoff[min(attempt - 1, len(self.backoff) - 1)] if self.backoff else 0.0
        if elapsed + wait > self.budget_s:
            return None
        return wait


DEFAULT_POLICY = RetryPolicy()
NO_RETRY = RetryPolicy(retries=0)


def after_output(err: ProviderError) -> ProviderError:
    """The same failure, marked final: output was already produced."""
    err.retryable = False
    return err


def _backoff(err: ProviderError, policy: RetryPolicy, attempt: int, t0: float, what: str) -> float:
    """Seconds to wait before retry number `attempt` after `err`; re-raises `err` when it is not retryable or
    the policy has no retry left for it (within the turn's latency budget)."""
    if not err.retryable:
        raise err
    wait = policy.delay(attempt, time.monotonic() - t0)
    if wait is None:
        raise err
    log.warning("%s failed (%s: %s); retry %d in %.2f s", what, err.reason, err.message, attempt, wait)
    return wait


async def call_with_retry(fn: Callable[[], Awaitable[T]], policy: RetryPolicy = DEFAULT_POLICY, *,
                          what: str = "provider call") -> T:
    """`await fn()`, calling it again on a retryable `ProviderError` as the policy allows."""
    t0 = time.monotonic()
    attempt = 0
    while True:
        try:
            return await fn()
        except ProviderError as e:
            attempt += 1
            await asyncio.sleep(_backoff(e, policy, attempt, t0, what))


async def stream_with_retry(make: Callable[[], AsyncIterator[T]], policy: RetryPolicy = DEFAULT_POLICY, *,
                            what: str = "provider stream") -> AsyncIterator[T]:
    """Iterate `make()`; a retryable `ProviderError` raised before its first item starts a fresh `make()`
    as the policy allows; one raised after the first item is re-raised as not retryable."""
    t0 = time.monotonic()
    attempt = 0
    while True:
        gen = make()
        produced = False
        try:
            async for item in gen:
                produced = True
                yield item
            return
        except ProviderError as e:
            if produced:
                after_output(e)
                raise
            attempt += 1
            wait = _backoff(e, policy, attempt, t0, what)
        finally:
            aclose = getattr(gen, "aclose", None)
            if aclose is not None:
                await aclose()
        await asyncio.sleep(wait)


# ---------------------------------------------------------------- classification shared by the HTTP providers


def status_error(status: int, message: str, *, provider: str, produced: bool = False) -> ProviderError:
    """An HTTP status → ProviderError: 429, 408, 409 and 5xx are retryable; 401/403, 404 and the other 4xx
    are not (a retry would fail the same way)."""
    if status == 429:
        retryable, reason = True, "rate_limited"
    elif status >= 500 or status in (408, 409):
        retryable, reason = True, "server_error"
    elif status in (401, 403):
        retryable, reason = False, "auth"
    elif status == 404:
        retryable, reason = False, "not_found"
    else:
        retryable, reason = False, "bad_request"
    return ProviderError(f"{status}: {message}", retryable=retryable and not produced, reason=reason,
                         provider=provider)


def is_transport_error(exc: BaseException) -> bool:
    """A connection-level failure (refused, reset, cut mid-stream, timed out): OSError, or an httpx /
    httpx2 `TransportError` (the SDKs here use either generation; both name their base class so)."""
    if isinstance(exc, OSError | TimeoutError):
        return True
    return any(c.__name__ == "TransportError" and c.__module__.startswith("httpx") for c in type(exc).__mro__)


def transport_error(exc: BaseException, *, provider: str, produced: bool = False) -> ProviderError:
    timeout = isinstance(exc, TimeoutError) or "Timeout" in type(exc).__name__
    return ProviderError(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__,
                         retryable=not produced, reason="timeout" if timeout else "connection", provider=provider)
