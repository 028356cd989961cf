"""SIP status → Q.850 cause and → call status (pure functions)."""

from __future__ import annotations

import pytest

from sipcore.causes import (
    DIAL_REFUSALS,
    CallStatus,
    DisconnectionReason,
    cause_to_call_status,
    sip_to_call_status,
    sip_to_q850,
)
from sipcore.errors import DialRefused


@pytest.mark.parametrize(
    ("status", "cause"),
    [
        (404, "UNALLOCATED_NUMBER"),
        (486, "USER_BUSY"),
        (480, "NO_USER_RESPONSE"),
        (408, "RECOVERY_ON_TIMER_EXPIRE"),
        (603, "CALL_REJECTED"),
        (487, "ORIGINATOR_CANCEL"),
        (503, "NORMAL_TEMPORARY_FAILURE"),
        (403, "CALL_REJECTED"),
        (484, "INVALID_NUMBER_FORMAT"),
        (488, "INCOMPATIBLE_DESTINATION"),
        (500, "NORMAL_TEMPORARY_FAILURE"),
        (502, "NETWORK_OUT_OF_ORDER"),
        (504, "RECOVERY_ON_TIMER_EXPIRE"),
        (410, "NUMBER_CHANGED"),
        (485, "NO_ROUTE_DESTINATION"),
        (604, "NO_ROUTE_DESTINATION"),
        (600, "USER_BUSY"),
        (200, "NORMAL_CLEARING"),
        (499, "CALL_REJECTED"),  # unknown 4xx: class default
        (599, "NORMAL_TEMPORARY_FAILURE"),
        (699, "CALL_REJECTED"),
    ],
)
def test_sip_to_q850(status: int, cause: str) -> None:
    assert sip_to_q850(status) == cause


@pytest.mark.parametrize(
    ("status", "call_status"),
    [
        (486, CallStatus.BUSY),
        (600, CallStatus.BUSY),
        (603, CallStatus.FAILED),
        (404, CallStatus.FAILED),
        (503, CallStatus.FAILED),
        (480, CallStatus.NO_ANSWER),
        (408, CallStatus.NO_ANSWER),
        (487, CallStatus.CANCELED),
        (200, CallStatus.COMPLETED),
    ],
)
def test_sip_to_call_status(status: int, call_status: CallStatus) -> None:
    assert sip_to_call_status(status) is call_status


def test_cause_to_call_status() -> None:
    assert cause_to_call_status("NORMAL_CLEARING") is CallStatus.COMPLETED
    assert cause_to_call_status("USER_BUSY") is CallStatus.BUSY
    assert cause_to_call_status("NO_ANSWER") is CallStatus.NO_ANSWER
    assert cause_to_call_status("ORIGINATOR_CANCEL") is CallStatus.CANCELED
    assert cause_to_call_status("CALL_REJECTED") is CallStatus.FAILED
    assert str(CallStatus.NO_ANSWER) == "no_answer"


def test_dial_refusal_reasons_are_one_vocabulary() -> None:
    """The dialer once tested ``reason == "bad_uri"`` while the engine raised ``"invalid_uri"``: the
    reason is now a DisconnectionReason, and a name outside the dial refusals cannot be raised."""
    exc = DialRefused("no host", reason="invalid_uri")
    assert exc.reason is DisconnectionReason.INVALID_URI and exc.reason in DIAL_REFUSALS
    with pytest.raises(ValueError):
        DialRefused("no host", reason="bad_uri")
    with pytest.raises(ValueError):
        DialRefused("x", reason="user_hangup")  # a reason, but not one the engine may give for a dial
