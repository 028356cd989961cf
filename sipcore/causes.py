"""SIP status → Q.850 cause (FreeSWITCH spelling) and → Switchboard call status.

Pure functions, RFC 3398 section 8.2.6.1 mapping as FreeSWITCH applies it
(``switch_channel.c`` / ``sofia.c``), plus the few non-SIP outcomes
(normal BYE, no answer, media timeout, cancel).
"""

from __future__ import annotations

import enum


class CallStatus(enum.StrEnum):
    """A call's status as Switchboard records it (the engine reports only the final ones)."""

    PENDING = "pending"
    RINGING = "ringing"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    BUSY = "busy"
    FAILED = "failed"
    NO_ANSWER = "no_answer"
    CANCELED = "canceled"


ACTIVE_STATUSES: tuple[CallStatus, ...] = (CallStatus.PENDING, CallStatus.RINGING, CallStatus.IN_PROGRESS)
ENDED_STATUSES: tuple[CallStatus, ...] = (CallStatus.COMPLETED, CallStatus.FAILED, CallStatus.NO_ANSWER,
                                          CallStatus.BUSY, CallStatus.CANCELED)


class HangupCause(enum.StrEnum):
    """Q.850 cause names as FreeSWITCH spells them (the ``hangup_cause`` of a call)."""

    NORMAL_CLEARING = "NORMAL_CLEARING"
    USER_BUSY = "USER_BUSY"
    NO_USER_RESPONSE = "NO_USER_RESPONSE"
    NO_ANSWER = "NO_ANSWER"
    CALL_REJECTED = "CALL_REJECTED"
    UNALLOCATED_NUMBER = "UNALLOCATED_NUMBER"
    NUMBER_CHANGED = "NUMBER_CHANGED"
    NO_ROUTE_DESTINATION = "NO_ROUTE_DESTINATION"
    INVALID_NUMBER_FORMAT = "INVALID_NUMBER_FORMAT"
    ORIGINATOR_CANCEL = "ORIGINATOR_CANCEL"
    MEDIA_TIMEOUT = "MEDIA_TIMEOUT"
    SYSTEM_SHUTDOWN = "SYSTEM_SHUTDOWN"
    RECOVERY_ON_TIMER_EXPIRE = "RECOVERY_ON_TIMER_EXPIRE"
    NORMAL_TEMPORARY_FAILURE = "NORMAL_TEMPORARY_FAILURE"
    NORMAL_UNSPECIFIED = "NORMAL_UNSPECIFIED"
    DESTINATION_OUT_OF_ORDER = "DESTINATION_OUT_OF_ORDER"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    SERVICE_NOT_IMPLEMENTED = "SERVICE_NOT_IMPLEMENTED"
    INTERWORKING = "INTERWORKING"
    EXCHANGE_ROUTING_ERROR = "EXCHANGE_ROUTING_ERROR"
    INCOMPATIBLE_DESTINATION = "INCOMPATIBLE_DESTINATION"
    NETWORK_OUT_OF_ORDER = "NETWORK_OUT_OF_ORDER"


class DisconnectionReason(enum.StrEnum):
    """Why a call ended (``disconnection_reason``): machine-readable, one vocabulary for the engine's
    dial refusals, inbound refusals and the domain's own endings."""

    # answered calls
    USER_HANGUP = "user_hangup"  # the far end hung up
    AGENT_HANGUP = "agent_hangup"  # the agent ended it (end_call tool, DTMF hangup rule, custom LLM)
    API_HANGUP = "api_hangup"  # POST /calls/{id}/end or /cancel
    INACTIVITY = "inactivity"
    MAX_DURATION_REACHED = "max_duration_reached"
    MEDIA_TIMEOUT = "media_timeout"
    TRANSFERRED = "transferred"
    SHUTDOWN = "shutdown"  # the server stopped (drain timeout) with the call up
    SYSTEM_SHUTDOWN = "system_shutdown"  # closed at restart after a crash
    ERROR = "error"  # the session itself failed
    # outbound calls never answered
    DIAL_BUSY = "dial_busy"
    DIAL_NO_ANSWER = "dial_no_answer"
    DIAL_FAILED = "dial_failed"
    DIAL_CANCELED = "dial_canceled"
    TRUNK_UNAVAILABLE = "trunk_unavailable"
    INVALID_DESTINATION = "invalid_destination"
    # the engine refused to dial (sipcore.errors.DialRefused.reason)
    DRAINING = "draining"
    OVER_CAPACITY = "over_capacity"
    INVALID_URI = "invalid_uri"
    NO_ROUTE = "no_route"
    ENGINE = "engine"
    # inbound refusals (the engine's and the router's)
    SCANNER = "scanner"
    RATE_LIMITED = "rate_limited"
    HANDLER_ERROR = "handler_error"
    UNKNOWN_NUMBER = "unknown_number"
    NO_AGENT = "no_agent"
    AGENT_DISABLED = "agent_disabled"
    NUMBER_INACTIVE = "number_inactive"
    TRUNK_DISABLED = "trunk_disabled"
    SOURCE_NOT_ALLOWED = "source_not_allowed"
    CALLER_CANCELED = "caller_canceled"  # an inbound caller gave up before we answered
    OVERLOADED = "overloaded"  # refused before the worker's audio would slip (switchboard.calls.overload)


# the engine's refusals to dial, as sipcore.errors.DialRefused carries them
DIAL_REFUSALS = frozenset({DisconnectionReason.DRAINING, DisconnectionReason.OVER_CAPACITY,
                           DisconnectionReason.INVALID_URI, DisconnectionReason.NO_ROUTE,
                           DisconnectionReason.ENGINE})

NORMAL_CLEARING = HangupCause.NORMAL_CLEARING
NO_ANSWER = HangupCause.NO_ANSWER
ORIGINATOR_CANCEL = HangupCause.ORIGINATOR_CANCEL
MEDIA_TIMEOUT = HangupCause.MEDIA_TIMEOUT
SYSTEM_SHUTDOWN = HangupCause.SYSTEM_SHUTDOWN
RECOVERY_ON_TIMER_EXPIRE = HangupCause.RECOVERY_ON_TIMER_EXPIRE
NORMAL_TEMPORARY_FAILURE = HangupCause.NORMAL_TEMPORARY_FAILURE
NORMAL_UNSPECIFIED = HangupCause.NORMAL_UNSPECIFIED
DESTINATION_OUT_OF_ORDER = HangupCause.DESTINATION_OUT_OF_ORDER

_SIP_TO_Q850: dict[int, str] = {
    400: "NORMAL_TEMPORARY_FAILURE",
    401: "CALL_REJECTED",
    402: "CALL_REJECTED",
    403: "CALL_REJECTED",
    404: "UNALLOCATED_NUMBER",
    405: "SERVICE_UNAVAILABLE",
    406: "SERVICE_NOT_IMPLEMENTED",
    407: "CALL_REJECTED",
    408: "RECOVERY_ON_TIMER_EXPIRE",
    410: "NUMBER_CHANGED",
    413: "INTERWORKING",
    414: "INTERWORKING",
    415: "SERVICE_NOT_IMPLEMENTED",
    416: "INTERWORKING",
    420: "INTERWORKING",
    421: "INTERWORKING",
    423: "INTERWORKING",
    480: "NO_USER_RESPONSE",
    481: "NORMAL_TEMPORARY_FAILURE",
    482: "EXCHANGE_ROUTING_ERROR",
    483: "EXCHANGE_ROUTING_ERROR",
    484: "INVALID_NUMBER_FORMAT",
    485: "NO_ROUTE_DESTINATION",
    486: "USER_BUSY",
    487: "ORIGINATOR_CANCEL",
    488: "INCOMPATIBLE_DESTINATION",
    500: "NORMAL_TEMPORARY_FAILURE",
    501: "SERVICE_NOT_IMPLEMENTED",
    502: "NETWORK_OUT_OF_ORDER",
    503: "NORMAL_TEMPORARY_FAILURE",
    504: "RECOVERY_ON_TIMER_EXPIRE",
    505: "INTERWORKING",
    513: "INTERWORKING",
    600: "USER_BUSY",
    603: "CALL_REJECTED",
    604: "NO_ROUTE_DESTINATION",
    606: "INCOMPATIBLE_DESTINATION",
}

_CLASS_DEFAULT = {
    3: "NORMAL_UNSPECIFIED",  # redirects we do not follow
    4: "CALL_REJECTED",  # RFC 3398: other 4xx → 21
    5: "NORMAL_TEMPORARY_FAILURE",  # other 5xx → 41
    6: "CALL_REJECTED",  # other 6xx → 21
}


def sip_to_q850(status: int) -> HangupCause:
    """Q.850 cause name for a final SIP failure status (3xx–6xx).

    2xx maps to NORMAL_CLEARING; anything unknown to its class default.
    """
    if 200 <= status < 300:
        return NORMAL_CLEARING
    if status in _SIP_TO_Q850:
        return HangupCause(_SIP_TO_Q850[status])
    return HangupCause(_CLASS_DEFAULT.get(status // 100, NORMAL_UNSPECIFIED))


def sip_to_call_status(status: int) -> CallStatus:
    """Our call status for a final failure answer to an INVITE we sent."""
    if status in (486, 600):
        return CallStatus.BUSY
    if status == 487:
        return CallStatus.CANCELED
    if status in (408, 480):
        return CallStatus.NO_ANSWER
    if 200 <= status < 300:
        return CallStatus.COMPLETED
    return CallStatus.FAILED


def cause_to_call_status(cause: str) -> CallStatus:
    """Our call status for a Q.850 cause name (e.g. from FreeSWITCH)."""
    return {
        NORMAL_CLEARING: CallStatus.COMPLETED,
        "USER_BUSY": CallStatus.BUSY,
        NO_ANSWER: CallStatus.NO_ANSWER,
        "NO_USER_RESPONSE": CallStatus.NO_ANSWER,
        ORIGINATOR_CANCEL: CallStatus.CANCELED,
    }.get(cause, CallStatus.FAILED)
