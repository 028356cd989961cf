"""The transport-neutral call leg: what a session and the media loop need from one call.

The SIP engine's call (:class:`sipcore.engine.Call`) satisfies it; a websocket media stream (Twilio,
Telnyx, a raw PCM socket) can implement it next without touching the session. The events and the end
record are sipcore's plain value types (:mod:`sipcore.calltypes`), which carry no SIP machinery.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

import numpy as np

from sipcore.calltypes import CallEnd, CallEvent, RtpStats


@runtime_checkable
class CallLeg(Protocol):
    """One call's audio and control, either direction, whatever carries it."""

    @property
    def end(self) -> CallEnd | None:
        """How the leg ended; None while it lives."""
        ...

    # -- events: CallRinging, CallAnswered, DtmfReceived, then CallEnded (always last)
    def events(self) -> AsyncIterator[CallEvent]: ...

    async def wait_ended(self) -> CallEnd: ...

    # -- control
    async def hangup(self) -> None:
        """End the leg in any state. Idempotent."""
        ...

    async def send_dtmf(self, digits: str) -> None: ...

    async def transfer(self, target: str, outcome_timeout: float = 30.0) -> None:
        """Blind transfer; on failure raises and the leg continues."""
        ...

    # -- media (called from the media tick: never block)
    @property
    def sample_rate(self) -> int:
        """PCM rate in Hz; 0 until media is up."""
        ...

    def read_pcm(self) -> np.ndarray:
        """All received int16 PCM since the last read (possibly empty)."""
        ...

    def write_pcm(self, pcm: np.ndarray) -> int:
        """Queue int16 PCM for transmission; returns samples accepted."""
        ...

    def flush_tx(self) -> None:
        """Drop queued transmit audio (barge-in)."""
        ...

    @property
    def tx_buffered(self) -> int:
        """Samples written but not yet transmitted."""
        ...

    def rtp_stats(self) -> RtpStats:
        """Media counters (zeros for transports without RTP)."""
        ...
