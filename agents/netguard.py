"""The one SSRF guard for every URL a tenant can make Switchboard reach.

Knowledge-base URL sources, custom HTTP tools, custom-LLM websockets, a tenant's LLM ``base_url`` and
webhooks all go through this module. The rules:

- only the schemes the caller names (``http``/``https``, or ``ws``/``wss``);
- the host is normalised the way the HTTP libraries will normalise it before it is judged: NFKC (so
  ``①②⑦.0.0.1`` and fullwidth ``１２７.０.０.１`` become ``127.0.0.1``), the ideographic and fullwidth full
  stops (``。．｡``) become dots, then IDNA (UTS 46). Legacy numeric IPv4 forms (``2130706433``, ``127.1``,
  ``0x7f.0.0.1``) are read as the address the C resolver would make of them;
- every address must be public: private, loopback, link-local, shared (CGNAT), multicast, reserved and
  unspecified addresses (and IPv4-mapped IPv6 forms of them) are refused;
- the check happens where the connection is made: the name is resolved once, the addresses are checked,
  and the connection goes to a checked address. So a second DNS answer cannot differ (no DNS
  rebinding), IP literals cannot skip the resolver, and every redirect hop is checked as it connects.

``allow_private`` (the operator's ``SWITCHBOARD_ALLOW_PRIVATE_URLS=1``, see ``allow_private_from_env``)
lifts the address check, never the scheme check.

Entry points:

- ``check_url(url, allow_private=..., schemes=...)`` → the normalised URL, or ``Blocked`` (a
  ``ValueError`` whose message a user can read). Synchronous, no DNS: for API-time validation and
  before opening a websocket. Names are accepted here and checked when they are resolved.
- ``guarded_session(allow_private=None, **kwargs)`` → an ``aiohttp.ClientSession`` whose connector
  enforces the rules on every connection (redirects included) — the function the webhook deliverer
  uses::

      async with netguard.guarded_session(timeout=aiohttp.ClientTimeout(total=10)) as session:
          netguard.check_url(url)                 # a clear reason before any I/O
          async with session.post(url, data=body, headers=headers) as resp: ...

  A refused address surfaces as ``aiohttp.ClientConnectorError`` whose ``os_error`` is a
  ``BlockedAddress``; ``refusal(exc)`` returns its reason (None for other errors).
- ``guarded_connector(allow_private)`` → the connector alone, for callers that build their own session.
- ``guarded_httpx_client(allow_private, **kwargs)`` → an ``httpx.AsyncClient`` (the openai, elevenlabs
  and deepgram SDKs take one) whose network backend resolves once, checks and connects to the checked
  address (TLS still verifies the original host name).
- ``resolve_public(host, port, allow_private)`` → the checked addresses, for pinning a connection made
  by a library this module has no hook into (e.g. ``websockets.connect(..., host=addr)``).

Who uses what: knowledge URL sources (``agents.knowledge.fetch``), HTTP tools (``agents.tools``) and
custom-LLM websockets (``agents.custom_llm``) use ``guarded_session``; an ``llm`` engine whose ``base_url``
the tenant chose gets ``guarded_httpx_client`` for the openai SDK (``agents.factory``). Speech providers'
base URLs (deepgram, elevenlabs, openai audio) come only from the operator's settings, which are trusted
and not checked; if a tenant-chosen speech URL is ever added, give the SDK ``guarded_httpx_client`` (and,
for a websocket SDK, connect to an address from ``resolve_public``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

ENV_ALLOW_PRIVATE = "SWITCHBOARD_ALLOW_PRIVATE_URLS"
HTTP = ("http", "https")
WEBSOCKET = ("ws", "wss")
_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": ".", "\u2024": ".", "\ufe52": "."})


class Blocked(ValueError):
    """A URL or address the guard refuses; the message is the reason a user reads. ``kind``: ``url``
    (not a URL of an allowed scheme with a host) or ``address`` (a non-public address)."""

    def __init__(self, message: str, kind: str = "url") -> None:
        super().__init__(message)
        self.kind = kind


class BlockedAddress(OSError):
    """Raised inside a connection attempt: the host resolved to an address that may not be reached."""


def allow_private_from_env(env: Mapping[str, str] | None = None) -> bool:
    value = (os.environ if env is None else env).get(ENV_ALLOW_PRIVATE, "")
    return value.strip().lower() in ("1", "true", "yes", "on")


def _allow(allow_private: bool | None) -> bool:
    return allow_private_from_env() if allow_private is None else allow_private


def address_refusal(address: str) -> str | None:
    """Why this IP address may not be reached, or None when it is public."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif ip.sixtofour is not None:
            ip = ip.sixtofour
    for flag, label in (("is_loopback", "loopback"), ("is_link_local", "link-local"), ("is_multicast", "multicast"),
                        ("is_unspecified", "unspecified"), ("is_private", "private"), ("is_reserved", "reserved")):
        if getattr(ip, flag):
            return f"{label} address {ip}"
    if not ip.is_global:
        return f"non-public address {ip}"
    return None


def normalize_host(host: str) -> str:
    """The host as the HTTP libraries will dial it: NFKC, ideographic dots, IDNA, lower case; an IP
    address (in any form the C resolver accepts) in its canonical form. ``Blocked`` if it is not a host."""
    text = unicodedata.normalize("NFKC", host.strip()).translate(_DOTS).strip("[]")
    text = unicodedata.normalize("NFKC", text).rstrip(".").lower()
    if not text:
        raise Blocked("the URL has no host")
    literal = ip_literal(text)
    if literal is not None:
        return literal
    if not text.isascii():
        import idna

        try:
            text = idna.encode(text, uts46=True).decode("ascii").lower()
        except idna.IDNAError:
            raise Blocked(f"{host!r} is not a valid host name") from None
    if any(c in text for c in "/\\@?#% ") or text.startswith(".") or ".." in text or len(text) > 253:
        raise Blocked(f"{host!r} is not a valid host name")
    literal = ip_literal(text)  # an IDNA label can spell digits too
    return literal if literal is not None else text


def ip_literal(host: str) -> str | None:
    """The canonical address when ``host`` is an IP literal, including legacy IPv4 forms
    (``2130706433``, ``127.1``, ``0x7f.1``) that getaddrinfo would turn into one; else None."""
    try:
        return str(ipaddress.ip_address(host.split("%", 1)[0]))
    except ValueError:
        pass
    if host and all(part for part in host.split(".")) and all(
            part.isdigit() or (part[:2] == "0x" and all(c in "0123456789abcdef" for c in part[2:]))
            for part in host.split(".")):
        try:
            return socket.inet_ntoa(socket.inet_aton(host))
        except OSError:
            return None
    return None


def check_host(host: str, *, allow_private: bool | None = None) -> str:
    """The normalised host; ``Blocked`` when it is an IP literal that is not public."""
    normal = normalize_host(host)
    if not _allow(allow_private):
        literal = ip_literal(normal)
        if literal is not None and (reason := address_refusal(literal)) is not None:
            raise Blocked(f"{host} is a {reason}; private addresses are not allowed", "address")
    return normal


def check_url(url: str, *, allow_private: bool | None = None, schemes: Sequence[str] = HTTP) -> str:
    """``url`` with its host normalised, or ``Blocked`` naming why it may not be reached (no DNS)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise Blocked("not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in schemes:
        raise Blocked(f"only {' and '.join(schemes)} URLs are allowed, not {parts.scheme or 'this'!r}")
    if not parts.hostname:
        raise Blocked("the URL has no host")
    host = check_host(parts.hostname, allow_private=allow_private)
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc = f"{netloc}:{port}"
    if parts.username is not None:
        userinfo = parts.username + (f":{parts.password}" if parts.password is not None else "")
        netloc = f"{userinfo}@{netloc}"
    return urlunsplit((scheme, netloc, parts.path, parts.query, parts.fragment))


def _refuse_results(host: str, addresses: Iterable[str]) -> None:
    for address in addresses:
        reason = address_refusal(address)
        if reason is not None:
            raise BlockedAddress(f"{host} resolves to a {reason}; private addresses are not allowed")


async def resolve_public(host: str, port: int, *, allow_private: bool | None = None) -> list[str]:
    """Resolve ``host`` once and return its addresses, all of them checked (``BlockedAddress`` if any
    is not public). Connect to one of these, not to the name."""
    normal = normalize_host(host)
    literal = ip_literal(normal)
    if literal is not None:
        addresses = [literal]
    else:
        infos = await asyncio.get_running_loop().getaddrinfo(normal, port, type=socket.SOCK_STREAM)
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not _allow(allow_private):
        _refuse_results(host, addresses)
    return addresses


def refusal(exc: BaseException) -> str | None:
    """The guard's reason when ``exc`` (an aiohttp or httpx error, or the cause chain) is a refusal."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, BlockedAddress | Blocked):
            return str(current)
        os_error = getattr(current, "os_error", None)
        if isinstance(os_error, BlockedAddress):
            return str(os_error)
        current = current.__cause__ or current.__context__
    return None


# ---- aiohttp ----------------------------------------------------------------------------------------

class GuardedResolver(AbstractResolver):
    """The system resolver, refusing a name when any of its addresses is not public."""

    def __init__(self, allow_private: bool | None = None) -> None:
        self._inner = ThreadedResolver()
        self.allow_private = _allow(allow_private)

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if not self.allow_private:
            _refuse_results(host, (r["host"] for r in results))
        return results

    async def close(self) -> None:
        await self._inner.close()


class GuardedConnector(aiohttp.TCPConnector):
    """A TCP connector that checks every address it is about to dial: names through the guarded resolver,
    and IP literals too (aiohttp does not pass those to the resolver — after yarl has normalised
    ``１２７.０.０.１`` to ``127.0.0.1``, this is the only place that still sees it)."""

    def __init__(self, allow_private: bool | None = None, **kwargs: Any) -> None:
        self.allow_private = _allow(allow_private)
        kwargs.setdefault("use_dns_cache", False)
        super().__init__(resolver=GuardedResolver(self.allow_private), **kwargs)

    async def _resolve_host(self, host: str, port: int, traces: Any = None) -> list[ResolveResult]:
        results = await super()._resolve_host(host, port, traces=traces)
        if not self.allow_private:
            _refuse_results(host, (r["host"] for r in results))
        return results


def guarded_connector(allow_private: bool | None = None, **kwargs: Any) -> GuardedConnector:
    return GuardedConnector(allow_private, **kwargs)


def guarded_session(*, allow_private: bool | None = None, force_close: bool = False,
                    **kwargs: Any) -> aiohttp.ClientSession:
    """An aiohttp session that can only reach public addresses (unless ``allow_private``; None reads
    ``SWITCHBOARD_ALLOW_PRIVATE_URLS``). Proxies from the environment are ignored. Every connection —
    the first request, each redirect hop, each websocket — is checked where it is made."""
    kwargs.setdefault("trust_env", False)
    return aiohttp.ClientSession(connector=GuardedConnector(allow_private, force_close=force_close), **kwargs)


# ---- httpx (the openai, elevenlabs and deepgram SDKs) -------------------------------------------------

def _guarded_backend(inner: Any, allow_private: bool) -> Any:
    import httpcore

    class GuardedBackend(httpcore.AsyncNetworkBackend):
        """Resolves once, checks every address, connects to a checked one."""

        async def connect_tcp(self, host: str, port: int, timeout: float | None = None,  # noqa: ASYNC109
                              local_address: str | None = None, socket_options: Any = None) -> Any:
            try:
                addresses = await resolve_public(host, port, allow_private=allow_private)
            except (BlockedAddress, Blocked) as exc:  # as httpx's ConnectError, so SDKs classify it
                raise httpcore.ConnectError(str(exc)) from exc
            except OSError as exc:
                raise httpcore.ConnectError(f"cannot resolve {host}: {exc.strerror or exc}") from exc
            error: Exception | None = None
            for address in addresses:
                try:
                    return await inner.connect_tcp(address, port, timeout=timeout, local_address=local_address,
                                                   socket_options=socket_options)
                except httpcore.ConnectError as exc:
                    error = exc
            raise error or httpcore.ConnectError(f"{host} has no address")

        async def connect_unix_socket(self, path: str, timeout: float | None = None,  # noqa: ASYNC109
                                      socket_options: Any = None) -> Any:
            raise httpcore.ConnectError("unix sockets are not allowed") from BlockedAddress(path)

        async def sleep(self, seconds: float) -> None:
            await inner.sleep(seconds)

    return GuardedBackend()


def guarded_httpx_transport(allow_private: bool | None = None, **kwargs: Any) -> Any:
    """An ``httpx.AsyncHTTPTransport`` whose connections go through the guard (httpx 0.28 / httpcore 1)."""
    import httpx

    from .providers.tls import ssl_context

    kwargs.setdefault("trust_env", False)
    kwargs.setdefault("verify", ssl_context())  # shared: building one is 30-55 ms of the event loop
    transport = httpx.AsyncHTTPTransport(**kwargs)
    pool = transport._pool  # the httpcore pool; its network backend is the one seam httpx leaves
    pool._network_backend = _guarded_backend(pool._network_backend, _allow(allow_private))
    return transport


def guarded_httpx_client(allow_private: bool | None = None, **kwargs: Any) -> Any:
    """An ``httpx.AsyncClient`` for an SDK's ``http_client=``: every connection checked, no env proxies."""
    import httpx

    kwargs.setdefault("trust_env", False)
    kwargs.setdefault("follow_redirects", False)
    return httpx.AsyncClient(transport=guarded_httpx_transport(allow_private), **kwargs)
