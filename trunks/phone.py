"""E.164 parsing, normalising and per-trunk formatting (Google's libphonenumber via `phonenumbers`)."""

from __future__ import annotations

import re

import phonenumbers

E164_HINT = "Each phone number must be in E.164 format (e.g., +15551234567) or SIP URI format (e.g., sip:1001@example.com)."
_LOOSE_CHARS = re.compile(r"[\s\-().]")
_SIP_URI = re.compile(r"^sips?:(?:[^@\s<>\"]+@)?[A-Za-z0-9.\-\[\]:]+(?::\d{1,5})?(?:;[^\s<>\"]*)?$")


class InvalidNumber(ValueError):
    pass


def normalize_e164(raw: str) -> str:
    """``+1 (863) 990-1708`` → ``+18639901708``. Raises InvalidNumber when it is not a valid number."""
    if not isinstance(raw, str):
        raise InvalidNumber("phone number must be a string")
    cleaned = _LOOSE_CHARS.sub("", raw.strip())
    if not re.fullmatch(r"\+[1-9]\d{6,14}", cleaned):
        raise InvalidNumber("Phone numbers must be in E.164 format, e.g. +15551234567.")
    try:
        parsed = phonenumbers.parse(cleaned, None)
    except phonenumbers.NumberParseException as exc:
        raise InvalidNumber(f"Not a phone number: {exc}") from exc
    if not phonenumbers.is_possible_number(parsed):
        raise InvalidNumber("Not a possible phone number for its country code.")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def is_sip_uri(value: str) -> bool:
    return bool(_SIP_URI.match(value.strip()))


def classify_destination(raw: str) -> tuple[str, str]:
    """Returns ("e164", number) or ("sip", uri); raises InvalidNumber otherwise."""
    value = raw.strip() if isinstance(raw, str) else raw
    if isinstance(value, str) and value.lower().startswith(("sip:", "sips:")):
        if not is_sip_uri(value):
            raise InvalidNumber(E164_HINT)
        return "sip", value
    try:
        return "e164", normalize_e164(value)
    except InvalidNumber as exc:
        raise InvalidNumber(E164_HINT) from exc


def format_for_trunk(e164: str, number_format: str, dial_prefix: str = "") -> str:
    """The user part a trunk expects: ``e164`` (+15551234567), ``no_plus`` (15551234567) or
    ``national`` (0207… / 555… as dialled inside the number's own country), after the trunk's dial prefix."""
    parsed = phonenumbers.parse(e164, None)
    if number_format == "e164":
        user = e164
    elif number_format == "no_plus":
        user = e164.lstrip("+")
    elif number_format == "national":
        national = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
        user = re.sub(r"\D", "", national)  # keeps the national trunk prefix (UK 020…, US none)
    else:
        raise ValueError(f"unknown number_format {number_format!r}")
    return f"{dial_prefix}{user}"
