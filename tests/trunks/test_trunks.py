"""trunks: numbers as each trunk wants them, dial targets, trunk accounts, CPS pacing, inbound parsing."""

from __future__ import annotations

import pytest

from trunks.accounts import account_config, dial_target
from trunks.inbound import e164_from_user, source_allowed
from trunks.limits import CpsLimiter
from trunks.phone import InvalidNumber, classify_destination, format_for_trunk, normalize_e164

TRUNK = {"host": "sip.carrier.example", "port": 5060, "transport": "udp", "number_format": "e164", "dial_prefix": "",
         "username": "acct", "auth_username": None, "realm": None, "outbound_proxy": None, "register": True,
         "register_expires": 300, "codecs": ["PCMA", "PCMU"]}


@pytest.mark.parametrize("raw, e164", [("+1 (863) 990-1708", "+18639901708"), ("+1-555-123-4567", "+15551234567"),
                                       ("+44 20 7946 0958", "+442079460958"), (" +4930123456 ", "+4930123456")])
def test_loose_formats_normalise(raw, e164):
    assert normalize_e164(raw) == e164


@pytest.mark.parametrize("raw", ["12345", "+1555", "5551234567", "+0 555 123", "tel:+15551234567", ""])
def test_not_e164(raw):
    with pytest.raises(InvalidNumber):
        normalize_e164(raw)


def test_destinations_are_numbers_or_sip_uris():
    assert classify_destination("sip:1001@pbx.example.com") == ("sip", "sip:1001@pbx.example.com")
    assert classify_destination("sips:alice@example.com:5061;transport=tls")[0] == "sip"
    assert classify_destination("+1 555 123 4567") == ("e164", "+15551234567")
    for bad in ("sip:", "sip:a b@c", "http://x", "1001"):
        with pytest.raises(InvalidNumber):
            classify_destination(bad)


def test_number_formats_per_trunk():
    assert format_for_trunk("+15551234567", "e164") == "+15551234567"
    assert format_for_trunk("+15551234567", "no_plus") == "15551234567"
    assert format_for_trunk("+15551234567", "national") == "5551234567"
    assert format_for_trunk("+442079460958", "national") == "02079460958"  # the trunk prefix stays
    assert format_for_trunk("+15551234567", "no_plus", "9") == "915551234567"


def test_dial_targets():
    assert dial_target("+15551234567", TRUNK) == "sip:+15551234567@sip.carrier.example"
    tcp = {**TRUNK, "port": 5080, "transport": "tcp", "number_format": "national", "dial_prefix": "0"}
    assert dial_target("+15551234567", tcp) == "sip:05551234567@sip.carrier.example:5080;transport=tcp"
    assert dial_target("sip:alice@example.com", None) == "sip:alice@example.com"
    with pytest.raises(ValueError):
        dial_target("+15551234567", None)


def test_trunk_account():
    cfg = account_config({**TRUNK, "port": 5070, "auth_username": "auth1", "realm": "carrier",
                          "outbound_proxy": "proxy.example:5061"}, "pw")
    assert (cfg.user, cfg.domain, cfg.password, cfg.auth_user, cfg.realm) == ("acct", "sip.carrier.example:5070",
                                                                            "pw", "auth1", "carrier")
    assert (cfg.register, cfg.expires, cfg.codecs, cfg.outbound_proxy) == (True, 300, ("pcma", "pcmu"),
                                                                          "proxy.example:5061")
    anon = account_config({**TRUNK, "username": None, "register": False}, "")
    assert anon.user == "switchboard" and anon.domain == "sip.carrier.example" and not anon.register


def test_cps_pacing():
    now = [0.0]
    cps = CpsLimiter(clock=lambda: now[0])
    assert [cps.allow("t", 2) for _ in range(3)] == [True, True, False]  # a second's worth of burst
    now[0] += 0.5
    assert cps.allow("t", 2) and not cps.allow("t", 2)
    assert all(cps.allow("other", None) for _ in range(100))  # no limit set
    now[0] += 10
    assert [cps.allow("t", 0.5) for _ in range(2)] == [True, False]  # slower than one per second


def test_inbound_users_and_sources():
    assert e164_from_user("+15550001111") == "+15550001111"
    assert e164_from_user("15550001111") == "+15550001111"
    assert e164_from_user("0015550001111") == "+15550001111"
    assert e164_from_user("demo") is None and e164_from_user("123") is None
    assert source_allowed([], None) and source_allowed([], "198.51.100.7")
    assert source_allowed(["198.51.100.0/24"], "198.51.100.7")
    assert not source_allowed(["198.51.100.0/24"], "203.0.113.5")
    assert not source_allowed(["198.51.100.0/24"], None) and not source_allowed(["198.51.100.0/24"], "not-an-ip")
