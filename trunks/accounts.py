"""A trunk row → the SIP engine's account and dial targets (no SIP spoken here)."""

from __future__ import annotations

from typing import Any

from sipcore.engine import AccountConfig

from .phone import format_for_trunk

_CODECS = {"PCMU": "pcmu", "PCMA": "pcma", "G722": "g722"}


def account_config(trunk: dict[str, Any], password: str) -> AccountConfig:
    """The engine account for a trunk: its identity, credentials, registration and codecs."""
    domain = trunk["host"] if trunk["port"] == 5060 else f"{trunk['host']}:{trunk['port']}"
    return AccountConfig(
        user=trunk["username"] or "switchboard",
        domain=domain,
        password=password,
        auth_user=trunk["auth_username"] or None,
        realm=trunk["realm"] or None,
        outbound_proxy=trunk["outbound_proxy"] or None,
        transport=trunk["transport"],
        register=bool(trunk["register"]),
        expires=trunk["register_expires"],
        codecs=tuple(_CODECS[c] for c in trunk["codecs"] if c in _CODECS) or ("pcmu", "pcma"),
        from_domain=trunk.get("from_domain") or None,
    )


def dial_target(destination: str, trunk: dict[str, Any] | None) -> str:
    """The Request-URI for a call: an E.164 number formatted for its trunk at the trunk's host, or a
    SIP URI as given (through the trunk's proxy when a trunk is set, which the account handles)."""
    if destination.lower().startswith(("sip:", "sips:")):
        return destination
    if trunk is None:
        raise ValueError("an E.164 destination needs a trunk")
    user = format_for_trunk(destination, trunk["number_format"], trunk["dial_prefix"] or "")
    hostport = trunk["host"] if trunk["port"] == 5060 else f"{trunk['host']}:{trunk['port']}"
    params = f";transport={trunk['transport']}" if trunk["transport"] != "udp" else ""
    return f"sip:{user}@{hostport}{params}"
