"""An in-process loopback engine call (no network) for runtime tests and benchmarks: the caller's audio is
scripted and delivered in real time, and the agent's audio is drained in real time into what the caller
heard. Implements sipcore's Call."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import numpy as np

from sipcore.causes import CallStatus, HangupCause
from sipcore.engine import (
    Call,
    CallAnswered,
    CallEnd,
    CallEnded,
    CallEvent,
    Direction,
    DtmfReceived,
    HangupBy,
    RtpStats,
)

RATE = 8000


class LoopbackCall(Call):
    def __init__(self, call_id: str = "loop-1") -> None:
        self.id = call_id
        self.direction = Direction.INBOUND
        self._events: asyncio.Queue[CallEvent] = asyncio.Queue()
        self._script: list[np.ndarray] = []
        self._rx_clock: float | None = None
        self.rx_started_at: float | None = None  # wall time of the caller's first sample
        self.media_stopped = False
        self._rx_due = 0.0
        self._noise = np.random.default_rng(7)
        self.heard: list[np.ndarray] = []  # what the caller heard, in order (agent audio and gaps)
        self._tx_queue: list[np.ndarray] = []
        self._tx_clock: float | None = None
        self._end: CallEnd | None = None
        self._ended = asyncio.Event()
        self._answered_at: float | None = None
        self.on_write: Callable[[np.ndarray], None] | None = None  # sees each block the engine is handed
        self.dtmf_sent: list[str] = []
        self.transfers: list[str] = []

    # -- test controls
    def answer_now(self) -> None:
        self._answered_at = time.monotonic()
        self._events.put_nowait(CallAnswered())

    def say(self, pcm: np.ndarray) -> None:
        """Queue caller audio (8 kHz int16) after what is already scripted."""
        self._script.append(pcm.astype(np.int16))

    def stop_media(self) -> None:
        """The caller's audio stops arriving (a dead RTP stream)."""
        self.media_stopped = True

    def press(self, digit: str) -> None:
        self._events.put_nowait(DtmfReceived(digit, 100))

    def remote_hangup(self) -> None:
        self._finish(HangupBy.REMOTE)

    def heard_audio(self) -> np.ndarray:
        self._drain_tx()
        return np.concatenate(self.heard) if self.heard else np.zeros(0, np.int16)

    def _finish(self, by: HangupBy) -> None:
        if self._end is None:
            dur = time.monotonic() - self._answered_at if self._answered_at else 0.0
            self._end = CallEnd(CallStatus.COMPLETED, HangupCause.NORMAL_CLEARING, None, "bye", by,
                                self._answered_at is not None, dur)
            self._events.put_nowait(CallEnded(self._end))
            self._ended.set()

    # -- Call interface
    @property
    def sip_call_id(self) -> str | None:
        return f"{self.id}@loopback"

    @property
    def answered(self) -> bool:
        return self._answered_at is not None

    @property
    def end(self) -> CallEnd | None:
        return self._end

    @property
    def desired_reject_status(self) -> int | None:
        return None

    async def answer(self) -> None:
        self.answer_now()

    async def reject(self, status: int = 486, reason: str = "") -> None:
        self._finish(HangupBy.LOCAL)

    async def hangup(self) -> None:
        self._finish(HangupBy.LOCAL)

    async def send_dtmf(self, digits: str) -> None:
        self.dtmf_sent.append(digits)

    async def transfer(self, target: str, outcome_timeout: float = 30.0) -> None:
        self.transfers.append(target)

    async def hold(self, on: bool = True) -> None:
        return None

    async def wait_answered(self) -> None:
        return None

    async def wait_ended(self) -> CallEnd:
        await self._ended.wait()
        assert self._end is not None
        return self._end

    async def events(self) -> AsyncIterator[CallEvent]:  # type: ignore[override]
        while True:
            event = await self._events.get()
            yield event
            if isinstance(event, CallEnded):
                return

    @property
    def sample_rate(self) -> int:
        return RATE

    def read_pcm(self) -> np.ndarray:
        if self.media_stopped:
            return np.zeros(0, np.int16)
        now = time.monotonic()
        if self._rx_clock is None:
            self._rx_clock = self.rx_started_at = now
        self._rx_due += (now - self._rx_clock) * RATE
        self._rx_clock = now
        n = int(self._rx_due)
        self._rx_due -= n
        out = np.rint(self._noise.normal(0, 20, n)).astype(np.int16)  # a line is never digitally silent
        filled = 0
        while filled < n and self._script:
            head = self._script[0]
            take = min(n - filled, len(head))
            out[filled:filled + take] = head[:take]
            filled += take
            if take == len(head):
                self._script.pop(0)
            else:
                self._script[0] = head[take:]
        return out

    def write_pcm(self, pcm: np.ndarray) -> int:
        self._drain_tx()
        self._tx_queue.append(pcm.copy())
        if self.on_write is not None:
            self.on_write(pcm)
        return len(pcm)

    def flush_tx(self) -> None:
        self._drain_tx()
        self._tx_queue.clear()

    def _drain_tx(self) -> None:
        now = time.monotonic()
        if self._tx_clock is None:
            self._tx_clock = now
        budget = int((now - self._tx_clock) * RATE)
        self._tx_clock += budget / RATE
        while budget > 0 and self._tx_queue:
            head = self._tx_queue[0]
            take = min(budget, len(head))
            self.heard.append(head[:take])
            budget -= take
            if take == len(head):
                self._tx_queue.pop(0)
            else:
                self._tx_queue[0] = head[take:]
        if budget > 0:
            self.heard.append(np.zeros(budget, np.int16))

    @property
    def tx_buffered(self) -> int:
        self._drain_tx()
        return sum(len(c) for c in self._tx_queue)

    def rtp_stats(self) -> RtpStats:
        return RtpStats()
