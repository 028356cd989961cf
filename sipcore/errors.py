"""Exceptions raised through Switchboard's engine interface."""

from __future__ import annotations

from sipcore.calltypes import CallEnd
from sipcore.causes import DIAL_REFUSALS, CallStatus, DisconnectionReason


class EngineError(Exception):
    """Any engine failure not covered by a more specific type."""


class EngineNotRunning(EngineError):
    """The engine is not started (or was stopped)."""


class DialRefused(EngineError):
    """``dial`` was refused before any INVITE went out.

    ``reason`` is one of :data:`sipcore.causes.DIAL_REFUSALS` (draining, over_capacity, invalid_uri,
    no_route, engine); anything else is a programming error and raises ValueError here.
    """

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = DisconnectionReason(reason)
        if self.reason not in DIAL_REFUSALS:
            raise ValueError(f"not a dial refusal: {reason!r}")


class DialFailed(EngineError):
    """An outbound call ended without being answered. Carries the classified end.

    Subclasses name the common outcomes so callers need not compare strings;
    every instance has ``end`` (status, Q.850 cause, SIP status).
    """

    def __init__(self, end: CallEnd) -> None:
        super().__init__(f"call not answered: {end.status} {end.cause} (SIP {end.sip_status}) {end.reason}")
        self.end = end

    @property
    def sip_status(self) -> int | None:
        return self.end.sip_status

    @property
    def cause(self) -> str:
        return self.end.cause

    @property
    def call_status(self) -> CallStatus:
        return self.end.status


class CallBusy(DialFailed):
    """486 / 600."""


class CallDeclined(DialFailed):
    """603 (and other explicit refusals: 403, 404, …)."""


class CallNoAnswer(DialFailed):
    """Rang until our timeout (we sent CANCEL), or 480/408 from the far end."""


class CallUnreachable(DialFailed):
    """No response at all within the setup timeout (or a transport failure)."""


class CallCanceled(DialFailed):
    """Outbound: we hung up before the far end answered. Inbound: the caller canceled before our
    answer (raised by ``answer()``; the call's end is CANCELED / ORIGINATOR_CANCEL)."""


class TransferError(EngineError):
    """A blind transfer failed; the call is still up. ``sip_status`` when reported."""

    def __init__(self, message: str, *, sip_status: int | None = None) -> None:
        super().__init__(message)
        self.sip_status = sip_status


def dial_failure(end: CallEnd) -> DialFailed:
    """The right :class:`DialFailed` subclass for a classified end."""
    if end.status is CallStatus.BUSY:
        return CallBusy(end)
    if end.status is CallStatus.NO_ANSWER:
        return CallNoAnswer(end)
    if end.status is CallStatus.CANCELED:
        return CallCanceled(end)
    if end.sip_status is None:
        return CallUnreachable(end)
    if end.sip_status == 603:
        return CallDeclined(end)
    return DialFailed(end)
