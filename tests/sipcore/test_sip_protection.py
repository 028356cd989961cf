"""Pure helpers: scanner filter, rate limiter, header parsing, registration backoff."""

from __future__ import annotations

import pytest

from sipcore.protection import RateLimiter, ScannerFilter
from sipcore.registration import backoff_delay
from sipcore.sipheaders import parse_name_addr, parse_uri, parse_via_source


def test_scanner_filter() -> None:
    f = ScannerFilter(("friendly-scanner", "sipvicious", "sipcli"))
    assert f.is_scanner("friendly-scanner")
    assert f.is_scanner("SIPVicious 0.3.4")
    assert f.is_scanner("sipcli/v1.8")
    assert not f.is_scanner("Zoiper rv2.10")
    assert not f.is_scanner(None)
    assert not f.is_scanner("")


def test_rate_limiter_refills_and_bounds_memory() -> None:
    now = [0.0]
    rl = RateLimiter(rate=1.0, burst=2, max_keys=3, clock=lambda: now[0])
    assert rl.allow("a") and rl.allow("a")
    assert not rl.allow("a")
    assert rl.allow("b")  # other sources are independent
    now[0] += 1.0
    assert rl.allow("a") and not rl.allow("a")
    for key in "cdefg":
        rl.allow(key)
    assert len(rl._buckets) == 3
    assert rl.denied == 2
    with pytest.raises(ValueError):
        RateLimiter(rate=0, burst=1)


def test_parse_name_addr() -> None:
    na = parse_name_addr('"Alice \\"A\\" Caller" <sip:+15550009999@10.0.0.1:5060;user=phone>;tag=abc')
    assert (na.display, na.user, na.host) == ('Alice "A" Caller', "+15550009999", "10.0.0.1:5060")
    assert na.uri == "sip:+15550009999@10.0.0.1:5060;user=phone"
    bare = parse_name_addr("sip:bob@example.com;tag=1")
    assert (bare.display, bare.user, bare.host) == ("", "bob", "example.com")
    assert parse_name_addr("Bob <sip:bob@h>").display == "Bob"
    assert parse_name_addr(None).user == ""
    assert parse_name_addr("<<<garbage").user == ""
    assert parse_uri("tel:+15551234567") == ("+15551234567", "")
    assert parse_uri("sip:example.com") == ("", "example.com")


def test_parse_via_source() -> None:
    assert parse_via_source("SIP/2.0/UDP 10.0.0.2:5070;branch=z9hG4bK1") == ("10.0.0.2", 5070)
    assert parse_via_source("SIP/2.0/TCP host.example;branch=x") == ("host.example", 5060)
    assert parse_via_source("SIP/2.0/UDP 10.0.0.2:5070;received=1.2.3.4;rport=4000") == ("1.2.3.4", 4000)
    assert parse_via_source("SIP/2.0/UDP [::1]:5062;branch=x, SIP/2.0/UDP a:1") == ("::1", 5062)
    assert parse_via_source("junk") == (None, None)
    assert parse_via_source(None) == (None, None)


def test_backoff_grows_and_caps() -> None:
    assert 1.6 <= backoff_delay(1) <= 2.4
    assert 6.4 <= backoff_delay(3) <= 9.6
    assert backoff_delay(30) <= 300 * 1.2
