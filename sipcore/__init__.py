"""sipcore — Switchboard's SIP engine layer.

Import the interface from here; the engine library stays behind
:mod:`sipcore.baresip_engine` (loaded only when an engine starts).
"""

from sipcore.causes import CallStatus, cause_to_call_status, sip_to_call_status, sip_to_q850
from sipcore.engine import (
    AccountConfig,
    AccountHandle,
    Call,
    CallAnswered,
    CallEnd,
    CallEnded,
    CallEvent,
    CallRinging,
    Direction,
    DtmfReceived,
    Engine,
    EngineConfig,
    EngineStats,
    HangupBy,
    IncomingCall,
    RefusedCall,
    RegistrationState,
    RegistrationStatus,
    RtpStats,
)
from sipcore.errors import (
    CallBusy,
    CallCanceled,
    CallDeclined,
    CallNoAnswer,
    CallUnreachable,
    DialFailed,
    DialRefused,
    EngineError,
    EngineNotRunning,
    TransferError,
)


def create_engine() -> Engine:
    """The default engine implementation (baresip-python)."""
    from sipcore.baresip_engine import BaresipEngine

    return BaresipEngine()


__all__ = [
    "AccountConfig",
    "AccountHandle",
    "Call",
    "CallAnswered",
    "CallBusy",
    "CallCanceled",
    "CallDeclined",
    "CallEnd",
    "CallEnded",
    "CallEvent",
    "CallNoAnswer",
    "CallRinging",
    "CallStatus",
    "CallUnreachable",
    "DialFailed",
    "DialRefused",
    "Direction",
    "DtmfReceived",
    "Engine",
    "EngineConfig",
    "EngineError",
    "EngineNotRunning",
    "EngineStats",
    "HangupBy",
    "IncomingCall",
    "RefusedCall",
    "RegistrationState",
    "RegistrationStatus",
    "RtpStats",
    "TransferError",
    "cause_to_call_status",
    "create_engine",
    "sip_to_call_status",
    "sip_to_q850",
]
