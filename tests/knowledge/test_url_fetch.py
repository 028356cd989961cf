"""URL sources: a real aiohttp server on loopback, the address guards, redirects, size and time limits."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from aiohttp import web

from agents import netguard
from agents.knowledge.fetch import FetchError, FetchLimits, address_refusal, fetch_page

LIMITS = FetchLimits(max_bytes=50_000, timeout_seconds=2.0, max_redirects=3)
ARTICLE = ("Switchboard answers phone calls with AI agents. Each agent has a voice, a greeting and a knowledge "
           "base that it uses to answer questions from callers.")


@pytest.mark.parametrize("address", ["127.0.0.1", "127.8.9.1", "::1", "10.1.2.3", "172.16.0.5", "192.168.1.10",
                                     "169.254.169.254", "fe80::1", "fc00::1", "100.64.0.1", "0.0.0.0", "::",
                                     "224.0.0.1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "240.0.0.1"])
def test_non_public_addresses_are_refused(address: str) -> None:
    assert address_refusal(address) is not None


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111", "::ffff:1.1.1.1"])
def test_public_addresses_pass(address: str) -> None:
    assert address_refusal(address) is None


async def test_loopback_is_refused_by_default(site) -> None:
    url = site.html("/a", "About", ARTICLE)
    with pytest.raises(FetchError, match="loopback"):
        await fetch_page(url, limits=LIMITS)
    assert site.hits == []  # refused before connecting


@pytest.mark.parametrize("host", ["①②⑦.0.0.1", "１２７.０.０.１", "127。0。0。1", "127｡0｡0｡1", "0x7f.1", "2130706433"])
async def test_loopback_spelled_otherwise_is_refused_and_never_reached(site, host: str) -> None:
    """Unicode digits, fullwidth digits and the ideographic full stop are what aiohttp turns into
    127.0.0.1: the guard must judge that address, not the spelling."""
    site.html("/a", "Internal", ARTICLE)
    with pytest.raises(FetchError, match="loopback address 127.0.0.1"):
        await fetch_page(f"http://{host}:{site.port}/a", limits=LIMITS)
    assert site.hits == []


async def test_a_redirect_to_a_unicode_loopback_host_is_refused(site, monkeypatch: pytest.MonkeyPatch) -> None:
    real = netguard.address_refusal
    monkeypatch.setattr(netguard, "address_refusal", lambda a: None if a == "127.0.0.1" else real(a))
    site.html("/final", "Final", ARTICLE)

    async def to_unicode(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://①②⑦.0.0.2:{site.port}/final")

    site.extra["/u"] = to_unicode
    with pytest.raises(FetchError, match="loopback address 127.0.0.2"):
        await fetch_page(site.url("/u"), limits=LIMITS)
    assert "/final" not in site.hits


async def test_a_name_resolving_to_loopback_is_refused_after_dns(site) -> None:
    site.html("/a", "About", ARTICLE)
    with pytest.raises(FetchError, match=r"localhost resolves to a loopback address"):
        await fetch_page(f"http://localhost:{site.port}/a", limits=LIMITS)
    assert site.hits == []


async def test_the_operator_flag_allows_private_addresses_and_html_becomes_text(site) -> None:
    url = site.html("/a", "About Switchboard", ARTICLE)
    page = await fetch_page(url, allow_private=True, limits=LIMITS)
    assert page.title == "About Switchboard" and page.url == url
    assert "Switchboard answers phone calls with AI agents." in page.text
    assert "Copyright" not in page.text and "Contact" not in page.text  # boilerplate dropped


async def test_plain_text_pages_are_taken_as_they_are(site) -> None:
    site.pages["/t.txt"] = ("text/plain", "Line one.\n\nLine two.")
    page = await fetch_page(site.url("/t.txt"), allow_private=True, limits=LIMITS)
    assert page.text == "Line one.\n\nLine two." and page.title == ""


async def test_redirects_are_followed_and_each_hop_is_checked(site, monkeypatch: pytest.MonkeyPatch) -> None:
    """127.0.0.1 plays a public server here: its redirect to another loopback address must be refused."""
    real = netguard.address_refusal
    monkeypatch.setattr(netguard, "address_refusal", lambda a: None if a == "127.0.0.1" else real(a))
    final = site.html("/final", "Final", ARTICLE)

    async def hop(request: web.Request) -> web.Response:
        raise web.HTTPFound("/final")

    async def to_private(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://127.0.0.2:{site.port}/final")

    async def to_metadata(request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently("http://169.254.169.254/latest/meta-data/")

    site.extra.update({"/hop": hop, "/private": to_private, "/metadata": to_metadata})
    page = await fetch_page(site.url("/hop"), limits=LIMITS)
    assert page.url == final and "AI agents" in page.text
    with pytest.raises(FetchError, match="loopback address 127.0.0.2"):
        await fetch_page(site.url("/private"), limits=LIMITS)
    with pytest.raises(FetchError, match="link-local address 169.254.169.254"):
        await fetch_page(site.url("/metadata"), limits=LIMITS)
    assert site.hits.count("/final") == 1  # only the allowed redirect reached it


async def test_too_many_redirects(site) -> None:
    async def loop_(request: web.Request) -> web.Response:
        raise web.HTTPFound("/loop")

    site.extra["/loop"] = loop_
    with pytest.raises(FetchError, match="more than 3 redirects"):
        await fetch_page(site.url("/loop"), allow_private=True, limits=LIMITS)
    assert site.hits.count("/loop") == 4


async def test_size_limit_with_and_without_content_length(site) -> None:
    big = "<html><body><p>" + "x " * 40_000 + "</p></body></html>"
    site.pages["/big"] = ("text/html", big)

    async def chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/html"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for _ in range(100):
            await resp.write(b"<p>" + b"y " * 500 + b"</p>")
        await resp.write_eof()
        return resp

    site.extra["/chunked"] = chunked
    for path in ("/big", "/chunked"):
        with pytest.raises(FetchError, match="larger than the 50000 byte limit"):
            await fetch_page(site.url(path), allow_private=True, limits=LIMITS)


async def test_time_limit(site) -> None:
    async def slow(request: web.Request) -> web.Response:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(site.closing.wait(), 5)
        return web.Response(text="late", content_type="text/plain")

    site.extra["/slow"] = slow
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    with pytest.raises(FetchError, match="longer than 0.3 s"):
        await fetch_page(site.url("/slow"), allow_private=True, limits=FetchLimits(timeout_seconds=0.3))
    assert loop.time() - t0 < 2


async def test_http_errors_types_and_empty_pages_have_reasons(site) -> None:
    site.pages["/pdf"] = ("application/pdf", "%PDF-1.4")
    site.pages["/empty"] = ("text/html", "<html><body></body></html>")
    with pytest.raises(FetchError, match="HTTP 404"):
        await fetch_page(site.url("/missing"), allow_private=True, limits=LIMITS)
    with pytest.raises(FetchError, match="unsupported content type 'application/pdf'"):
        await fetch_page(site.url("/pdf"), allow_private=True, limits=LIMITS)
    with pytest.raises(FetchError, match="no readable text"):
        await fetch_page(site.url("/empty"), allow_private=True, limits=LIMITS)
    with pytest.raises(FetchError, match="only http and https"):
        await fetch_page("ftp://example.com/file.txt", limits=LIMITS)


async def test_connection_refused_is_a_reason_not_a_crash() -> None:
    with pytest.raises(FetchError, match="cannot connect"):
        await fetch_page("http://127.0.0.1:9/", allow_private=True, limits=LIMITS)
