"""Registration supervision: state tracking and retry with backoff.

Engine-agnostic: the engine supplies a ``register()`` coroutine that raises
:class:`RegistrationFailure`, and feeds later native outcomes (refresh
successes and failures) through :meth:`RegistrationSupervisor.native_ok` /
:meth:`native_failed`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable

from sipcore.engine import RegistrationState, RegistrationStatus

logger = logging.getLogger(__name__)


class RegistrationFailure(Exception):
    def __init__(self, message: str, *, sip_status: int | None = None) -> None:
        super().__init__(message)
        self.sip_status = sip_status


def backoff_delay(attempt: int, *, base: float = 2.0, cap: float = 300.0) -> float:
    """Delay before retry number ``attempt`` (1-based): base·2^(n-1), capped, ±20 % jitter."""
    delay = min(cap, base * (2 ** max(0, attempt - 1)))
    return delay * random.uniform(0.8, 1.2)


class RegistrationSupervisor:
    """Keeps one account registered; reports every status change."""

    def __init__(
        self,
        register: Callable[[], Awaitable[None]],
        expires: int,
        on_change: Callable[[RegistrationStatus], None],
        *,
        backoff_base: float = 2.0,
        backoff_cap: float = 300.0,
    ) -> None:
        self._register = register
        self._expires = expires
        self._on_change = on_change
        self._base = backoff_base
        self._cap = backoff_cap
        self.status = RegistrationStatus(RegistrationState.UNREGISTERED)
        self._task: asyncio.Task[None] | None = None
        self._kick = asyncio.Event()
        self._changed = asyncio.Event()

    def _set(self, status: RegistrationStatus) -> None:
        if status != self.status:
            self.status = status
            self._changed.set()
            try:
                self._on_change(status)
            except Exception:
                logger.exception("registration callback raised")

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="sip-registration")

    async def settle(self, timeout: float) -> None:  # noqa: ASYNC109 - a bound, not a cancellation scope
        """Wait (at most ``timeout``) for a REGISTER in flight to have its outcome. Cancelling it instead
        would leave the engine's own client registered, and renewing, if the registrar accepts it later."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.status.state is RegistrationState.REGISTERING and self._task and not self._task.done():
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                return

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        self._set(RegistrationStatus(RegistrationState.UNREGISTERED))

    def native_ok(self) -> None:
        """A (refresh) REGISTER succeeded inside the engine."""
        self._set(
            RegistrationStatus(
                RegistrationState.REGISTERED, sip_status=200, expires_at=time.time() + self._expires
            )
        )

    def native_failed(self, sip_status: int | None, error: str) -> None:
        """A refresh failed inside the engine: retry from our loop."""
        if self.status.state is RegistrationState.REGISTERED:
            self._set(RegistrationStatus(RegistrationState.FAILED, sip_status=sip_status, error=error))
            self._kick.set()

    async def _run(self) -> None:
        attempts = 0
        while True:
            self._set(
                RegistrationStatus(
                    RegistrationState.REGISTERING,
                    sip_status=self.status.sip_status,
                    error=self.status.error,
                    attempts=attempts,
                )
            )
            try:
                await self._register()
            except RegistrationFailure as exc:
                attempts += 1
                delay = backoff_delay(attempts, base=self._base, cap=self._cap)
                self._set(
                    RegistrationStatus(
                        RegistrationState.FAILED,
                        sip_status=exc.sip_status,
                        error=str(exc),
                        attempts=attempts,
                        next_retry_at=time.time() + delay,
                    )
                )
                logger.warning("registration failed (%s); retry in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                continue
            attempts = 0
            self.native_ok()
            self._kick.clear()
            await self._kick.wait()  # a later native failure re-arms us
