"""Value types describing calls: direction, events, how a call ended, RTP stats.

Plain frozen dataclasses shared by the engine interface and its implementations.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from sipcore.causes import CallStatus


class Direction(enum.Enum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class HangupBy(enum.Enum):
    LOCAL = "local"  # we hung up / rejected / cancelled / timed out
    REMOTE = "remote"  # the peer sent BYE, CANCEL or a final error
    SYSTEM = "system"  # media timeout, engine shut down, transport failure


@dataclass(frozen=True)
class CallEnd:
    """How a call ended.

    Attributes:
        status: Our call status (completed, busy, failed, no_answer, canceled).
        cause: Q.850 cause name as FreeSWITCH spells it (NORMAL_CLEARING, USER_BUSY…).
        sip_status: The SIP status that ended it, when there was one.
        reason: Engine's reason text (for ``disconnection_reason``).
        hangup_by: Who ended the call.
        answered: Whether the call was ever answered.
        duration_s: Seconds from answer to end (0 if never answered).
    """

    status: CallStatus
    cause: str
    sip_status: int | None
    reason: str
    hangup_by: HangupBy
    answered: bool
    duration_s: float = 0.0


@dataclass(frozen=True)
class CallRinging:
    """The far end is alerting (180/183) — outbound calls only."""


@dataclass(frozen=True)
class CallAnswered:
    """The call is established (200 OK + ACK); media flows."""


@dataclass(frozen=True)
class DtmfReceived:
    """The far end pressed a key (RFC 4733 telephone-event or SIP INFO)."""

    digit: str
    duration_ms: int


@dataclass(frozen=True)
class CallEnded:
    """Final event of every call; nothing follows it."""

    end: CallEnd


CallEvent = CallRinging | CallAnswered | DtmfReceived | CallEnded


@dataclass(frozen=True)
class RtpStats:
    """Media counters (RTCP-derived fields are zero until the first report)."""

    rx_packets: int = 0
    tx_packets: int = 0
    rx_lost: int = 0
    rx_jitter_ms: float = 0.0
    tx_lost: int = 0
    rtt_ms: float = 0.0
