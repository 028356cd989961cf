"""SIP status → Q.850 cause (FreeSWITCH spelling) and → Switchboard call status.

Pure functions, RFC 3398 section 8.2.6.1 mapping as FreeSWITCH applies it
(``switch_channel.c`` / ``sofia.c``), plus the few non-SIP outcomes
(normal BYE, no answer, media timeout, cancel).
"""

from __future__ import annotations

import enum


class CallStatus(enum.StrEnum):
    """Final status of a call as Switchboard records it."""

    COMPLETED = "completed"
    BUSY = "busy"
    FAILED = "failed"
    NO_ANSWER = "no_answer"
    CANCELED = "canceled"


NORMAL_CLEARING = "NORMAL_CLEARING"
NO_ANSWER = "NO_ANSWER"
ORIGINATOR_CANCEL = "ORIGINATOR_CANCEL"
MEDIA_TIMEOUT = "MEDIA_TIMEOUT"
SYSTEM_SHUTDOWN = "SYSTEM_SHUTDOWN"
RECOVERY_ON_TIMER_EXPIRE = "RECOVERY_ON_TIMER_EXPIRE"
NORMAL_TEMPORARY_FAILURE = "NORMAL_TEMPORARY_FAILURE"
NORMAL_UNSPECIFIED = "NORMAL_UNSPECIFIED"
DESTINATION_OUT_OF_ORDER = "DESTINATION_OUT_OF_ORDER"

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


def sip_to_q850(status: int) -> str:
    """Q.850 cause name for a final SIP failure status (3xx–6xx).

    2xx maps to NORMAL_CLEARING; anything unknown to its class default.
    """
    if 200 <= status < 300:
        return NORMAL_CLEARING
    if status in _SIP_TO_Q850:
        return _SIP_TO_Q850[status]
    return _CLASS_DEFAULT.get(status // 100, NORMAL_UNSPECIFIED)


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
