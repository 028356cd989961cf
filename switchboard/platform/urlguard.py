"""The SSRF guard for webhook URLs, in one place so it can be re-pointed at the shared guard module
(``agents/netguard.py``) once that lands. Until then it uses the knowledge fetcher's guarded resolver:
the address that is checked is the address that is dialled, private/loopback/link-local addresses are
refused unless the operator sets ``SWITCHBOARD_ALLOW_PRIVATE_URLS=1``."""

from __future__ import annotations

from urllib.parse import urlsplit

import aiohttp

from agents.knowledge.fetch import BlockedAddress, GuardedResolver, address_refusal

__all__ = ["BlockedAddress", "connector", "refusal"]


def connector(allow_private: bool, *, limit: int = 100) -> aiohttp.TCPConnector:
    """A connector whose resolver refuses non-public addresses (unless ``allow_private``)."""
    return aiohttp.TCPConnector(resolver=GuardedResolver(allow_private), limit=limit, ttl_dns_cache=60)


def refusal(url: str, allow_private: bool) -> str | None:
    """Why ``url`` may not be called (scheme, missing host, private IP literal), or None."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return f"only http and https webhook URLs are called, not {parts.scheme or 'this'!r}"
    if not parts.hostname:
        return "the URL has no host"
    if allow_private:
        return None
    try:
        reason = address_refusal(parts.hostname)
    except ValueError:
        return None  # a host name: the resolver checks each address it resolves to
    return f"{parts.hostname} is a {reason}; private addresses are not called" if reason else None
