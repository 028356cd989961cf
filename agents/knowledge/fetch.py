"""URL sources: fetched with aiohttp, reduced to readable text with trafilatura.

Guards, all on by default:
- only http and https;
- every address must be public (``agents.netguard``, the one SSRF guard: the host is normalised as the
  HTTP library will normalise it, and the check lives in the connector, so the address that was checked
  is the address that is dialled — no DNS rebinding, no Unicode-digit IP literals);
- redirects are followed by hand (at most ``max_redirects``) and every hop is checked again;
- a size limit on the (decompressed) body and one time limit for the whole fetch, redirects included;
- only HTML and plain-text pages.
``allow_private=True`` (the operator's ``SWITCHBOARD_ALLOW_PRIVATE_URLS=1``) lifts the address check.

Every refusal or failure is a ``FetchError`` whose message is the reason a user reads on the source.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass
from html import unescape
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp

from .. import netguard
from ..netguard import address_refusal

__all__ = ["FetchError", "FetchLimits", "Page", "address_refusal", "extract_html", "fetch_page"]

USER_AGENT = "Switchboard-KnowledgeFetcher/1.0 (+self-hosted voice AI)"
_HTML_TYPES = ("text/html", "application/xhtml+xml")
_TEXT_TYPES = ("text/plain", "text/markdown", "text/x-markdown")
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


class FetchError(Exception):
    """A URL source could not be fetched; the message is the reason shown on the source."""


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


def _check_url(url: str, allow_private: bool) -> str:
    try:
        return netguard.check_url(url, allow_private=allow_private)
    except netguard.Blocked as exc:
        raise FetchError(str(exc).replace("are not allowed", "are not fetched")) from None


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
    async with netguard.guarded_session(allow_private=allow_private, force_close=True,
                                        headers={"User-Agent": USER_AGENT}) as session:
        current = url
        for _hop in range(limits.max_redirects + 1):
            current = _check_url(current, allow_private)
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
                if (reason := netguard.refusal(exc)) is not None:
                    raise FetchError(reason.replace("are not allowed", "are not fetched")) from None
                raise FetchError(f"cannot connect to {urlsplit(current).hostname}"
                                 f" ({exc.os_error.strerror or 'connection failed'})") from None
            except aiohttp.ClientError as exc:
                raise FetchError(f"the page could not be fetched: {_client_error_reason(exc)}") from None
        raise FetchError(f"more than {limits.max_redirects} redirects")


def _client_error_reason(exc: aiohttp.ClientError) -> str:
    """A reader's reason for an aiohttp failure (never the exception's class or internal text)."""
    if isinstance(exc, aiohttp.InvalidURL):
        return "the URL is not valid"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "the page's content was cut off or malformed"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"the server's answer was malformed (HTTP {exc.status})" if exc.status else \
            "the server's answer was malformed"
    if isinstance(exc, aiohttp.ClientSSLError):
        return "the server's TLS certificate could not be verified"
    return "the connection failed"


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
