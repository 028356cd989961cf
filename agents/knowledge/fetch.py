"""URL sources: fetched with aiohttp, reduced to readable text with trafilatura.

Guards, all on by default:
- only http and https;
- every address a host name resolves to must be public: private, loopback, link-local, shared (CGNAT),
  multicast, reserved and unspecified addresses are refused. The check lives in the resolver aiohttp
  connects with, so the address that was checked is the address that is dialled (no DNS rebinding), and
  IP literals are checked before the request;
- redirects are followed by hand (at most ``max_redirects``) and every hop is checked again;
- a size limit on the (decompressed) body and one time limit for the whole fetch, redirects included;
- only HTML and plain-text pages.
``allow_private=True`` (the operator's ``SWITCHBOARD_ALLOW_PRIVATE_URLS=1``) lifts the address check.

Every refusal or failure is a ``FetchError`` whose message is the reason a user reads on the source.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from html import unescape
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

USER_AGENT = "Switchboard-KnowledgeFetcher/1.0 (+self-hosted voice AI)"
_HTML_TYPES = ("text/html", "application/xhtml+xml")
_TEXT_TYPES = ("text/plain", "text/markdown", "text/x-markdown")
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


class FetchError(Exception):
    """A URL source could not be fetched; the message is the reason shown on the source."""


class BlockedAddress(OSError):
    """A host resolved to an address the fetcher must not reach."""


@dataclass(frozen=True)
class FetchLimits:
    max_bytes: int = 5 * 1024 * 1024
    timeout_seconds: float = 20.0
    max_redirects: int = 5


@dataclass(frozen=True)
class Page:
    url: str  # after redirects
    title: str
    text: str


def address_refusal(address: str) -> str | None:
    """Why this address may not be fetched, or None when it is a public address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for flag, label in (("is_loopback", "loopback"), ("is_link_local", "link-local"), ("is_multicast", "multicast"),
                        ("is_unspecified", "unspecified"), ("is_private", "private"), ("is_reserved", "reserved")):
        if getattr(ip, flag):
            return f"{label} address {ip}"
    if not ip.is_global:
        return f"non-public address {ip}"
    return None


class GuardedResolver(AbstractResolver):
    """Resolves with the system resolver, then refuses the name if any of its addresses is not public."""

    def __init__(self, allow_private: bool) -> None:
        self._inner = ThreadedResolver()
        self.allow_private = allow_private

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if not self.allow_private:
            for result in results:
                reason = address_refusal(result["host"])
                if reason is not None:
                    raise BlockedAddress(f"{host} resolves to a {reason}; private addresses are not fetched")
        return results

    async def close(self) -> None:
        await self._inner.close()


def _check_url(url: str, allow_private: bool) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise FetchError(f"only http and https URLs can be fetched, not {parts.scheme or 'this'!r}")
    host = parts.hostname
    if not host:
        raise FetchError("the URL has no host")
    if not allow_private:
        try:
            reason = address_refusal(host)
        except ValueError:
            reason = None  # a name: the resolver checks what it resolves to
        if reason is not None:
            raise FetchError(f"{host} is a {reason}; private addresses are not fetched")
    return url


async def fetch_page(url: str, *, allow_private: bool = False, limits: FetchLimits | None = None,
                     extract: Callable[[str, str], str] | None = None,
                     run: Callable[..., Any] | None = None) -> Page:
    """Fetch ``url`` and reduce it to text. ``run(fn, *args)`` runs the CPU-heavy HTML extraction off the
    event loop (default: the loop's default executor)."""
    limits = limits or FetchLimits()
    loop = asyncio.get_running_loop()
    run = run or (lambda fn, *a: loop.run_in_executor(None, fn, *a))
    try:
        async with asyncio.timeout(limits.timeout_seconds):
            final_url, content_type, charset, body = await _download(url, allow_private, limits)
            raw = body.decode(charset or "utf-8", errors="replace")
            if content_type in _HTML_TYPES:
                title = _html_title(raw)
                text = await run(extract or extract_html, raw, final_url)
            else:
                title, text = "", raw
    except TimeoutError:
        raise FetchError(f"the page took longer than {limits.timeout_seconds:g} s to fetch") from None
    text = (text or "").strip()
    if not text:
        raise FetchError("the page has no readable text")
    return Page(final_url, title, text)


async def _download(url: str, allow_private: bool, limits: FetchLimits) -> tuple[str, str, str | None, bytes]:
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(allow_private), force_close=True)
    async with aiohttp.ClientSession(connector=connector, headers={"User-Agent": USER_AGENT},
                                     trust_env=False) as session:
        current = url
        for _hop in range(limits.max_redirects + 1):
            _check_url(current, allow_private)
            try:
                async with session.get(current, allow_redirects=False) as resp:
                    if resp.status in (301, 302, 303, 307, 308):
                        location = resp.headers.get("Location")
                        if not location:
                            raise FetchError(f"HTTP {resp.status} without a Location header")
                        current = urljoin(current, location)
                        continue
                    if resp.status >= 400:
                        raise FetchError(f"HTTP {resp.status} {resp.reason or ''}".strip())
                    content_type = resp.content_type.lower()
                    if content_type not in _HTML_TYPES + _TEXT_TYPES:
                        raise FetchError(f"unsupported content type {content_type!r} (HTML or plain text only)")
                    if resp.content_length is not None and resp.content_length > limits.max_bytes:
                        raise FetchError(f"the page is larger than the {limits.max_bytes} byte limit")
                    body = bytearray()
                    async for piece in resp.content.iter_chunked(64 * 1024):
                        body += piece
                        if len(body) > limits.max_bytes:
                            raise FetchError(f"the page is larger than the {limits.max_bytes} byte limit")
                    return str(resp.url), content_type, resp.charset, bytes(body)
            except aiohttp.ClientConnectorError as exc:
                if isinstance(exc.os_error, BlockedAddress):
                    raise FetchError(str(exc.os_error)) from None
                raise FetchError(f"cannot connect to {urlsplit(current).hostname}: {exc.os_error}") from None
            except aiohttp.ClientError as exc:
                raise FetchError(f"fetch failed: {exc.__class__.__name__}: {exc}") from None
        raise FetchError(f"more than {limits.max_redirects} redirects")


def _html_title(html: str) -> str:
    match = _TITLE.search(html[:200_000])
    return " ".join(unescape(match[1]).split())[:200] if match else ""


def extract_html(html: str, url: str) -> str:
    """The main text of an HTML page (trafilatura; boilerplate, menus and footers dropped). Blocking."""
    import trafilatura

    text = trafilatura.extract(html, url=url, output_format="txt", include_comments=False, include_tables=True,
                               config=_trafilatura_config())
    return text or ""


_CONFIG: Any = None


def _trafilatura_config() -> Any:
    """trafilatura's defaults, except that short pages (a heading and a paragraph) are kept: by default,
    under 250 characters of main text it falls back to the whole page, menus and footers included."""
    global _CONFIG
    if _CONFIG is None:
        from trafilatura.settings import use_config

        config = use_config()
        config.set("DEFAULT", "MIN_EXTRACTED_SIZE", "1")
        _CONFIG = config
    return _CONFIG
