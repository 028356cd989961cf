"""The one SSRF guard (agents.netguard), through every path that reaches a tenant's URL: aiohttp sessions,
HTTP tools, custom-LLM websockets, httpx clients for the SDKs. A loopback server plays the internal
service that must not be reached: its hits are counted."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import httpx
import pytest
from aiohttp import web

from agents import netguard
from agents.custom_llm import CustomLlmEngine
from agents.providers.base import ProviderError, ToolCall
from agents.tools import ToolExecutor
from tests.support.loopback_http import serve_on_loopback

SPELLINGS = ["①②⑦.0.0.1", "１２７.０.０.１", "127。0。0。1", "127｡0｡0｡1", "127．0．0．1"]


@dataclass
class Internal:
    port: int = 0
    hits: list[str] = field(default_factory=list)


@pytest.fixture
async def internal() -> AsyncIterator[Internal]:
    state = Internal()

    async def any_path(request: web.Request) -> web.StreamResponse:
        state.hits.append(request.path)
        if request.headers.get("Upgrade", "").lower() == "websocket":
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            await ws.close()
            return ws
        return web.json_response({"secret": "internal"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", any_path)
    runner, state.port = await serve_on_loopback(app)
    yield state
    await runner.cleanup()


@pytest.mark.parametrize("host", SPELLINGS)
def test_unicode_spellings_normalise_to_loopback_and_are_refused(host: str) -> None:
    assert netguard.normalize_host(host) == "127.0.0.1"
    with pytest.raises(netguard.Blocked, match="loopback address 127.0.0.1") as err:
        netguard.check_url(f"http://{host}:8080/x", allow_private=False)
    assert err.value.kind == "address"
    assert netguard.check_url(f"http://{host}:8080/x", allow_private=True) == "http://127.0.0.1:8080/x"


@pytest.mark.parametrize("host", ["2130706433", "0x7f.1", "0177.0.0.1", "127.1", "[::1]", "[::ffff:127.0.0.1]",
                                  "169.254.169.254", "[fe80::1]", "10.0.0.1", "0.0.0.0"])
def test_legacy_and_ipv6_forms_are_refused(host: str) -> None:
    with pytest.raises(netguard.Blocked):
        netguard.check_url(f"https://{host}/", allow_private=False)


def test_public_names_and_schemes() -> None:
    assert netguard.check_url("https://Bücher.example/a?b=1") == "https://xn--bcher-kva.example/a?b=1"
    assert netguard.check_url("wss://93.184.216.34:443/llm", schemes=netguard.WEBSOCKET) == \
        "wss://93.184.216.34:443/llm"
    for bad in ("ftp://example.com/", "http:///nohost", "file:///etc/passwd", "not a url"):
        with pytest.raises(netguard.Blocked) as err:
            netguard.check_url(bad)
        assert err.value.kind == "url"


def test_allow_private_comes_from_the_operator_setting() -> None:
    assert netguard.allow_private_from_env({"SWITCHBOARD_ALLOW_PRIVATE_URLS": "1"})
    assert not netguard.allow_private_from_env({})


@pytest.mark.parametrize("host", [*SPELLINGS, "127.0.0.1", "localhost"])
async def test_guarded_session_never_connects_to_loopback(internal: Internal, host: str) -> None:
    """aiohttp itself normalises the Unicode hosts to 127.0.0.1 and skips the resolver for IP literals:
    the guard sits in the connector, so no spelling gets through (no check_url call here on purpose)."""
    async with netguard.guarded_session(allow_private=False) as session:
        with pytest.raises(aiohttp.ClientConnectorError) as err:
            await session.get(f"http://{host}:{internal.port}/admin")
        assert netguard.refusal(err.value) is not None
        with pytest.raises(aiohttp.ClientConnectorError):
            await session.ws_connect(f"ws://{host}:{internal.port}/ws")
    assert internal.hits == []


async def test_guarded_session_checks_every_redirect(internal: Internal, monkeypatch: pytest.MonkeyPatch) -> None:
    """127.0.0.2 plays a public server whose redirect points at the internal one: aiohttp follows
    redirects by itself, and the connector refuses the hop."""
    real = netguard.address_refusal
    monkeypatch.setattr(netguard, "address_refusal", lambda a: None if a == "127.0.0.2" else real(a))
    redirects: list[str] = []

    async def public_looking(request: web.Request) -> web.Response:
        redirects.append(request.path)
        raise web.HTTPFound(f"http://１２７.０.０.１:{internal.port}/admin")

    app = web.Application()
    app.router.add_get("/", public_looking)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.2", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with netguard.guarded_session(allow_private=False) as session:
            with pytest.raises(aiohttp.ClientConnectorError) as err:
                await session.get(f"http://127.0.0.2:{port}/")
            assert "loopback address 127.0.0.1" in (netguard.refusal(err.value) or "")
    finally:
        await runner.cleanup()
    assert redirects == ["/"] and internal.hits == []


async def test_the_operator_flag_lets_the_session_through(internal: Internal) -> None:
    async with netguard.guarded_session(allow_private=True) as session, \
            session.get(f"http://127。0。0。1:{internal.port}/ok") as resp:
        assert resp.status == 200
    assert internal.hits == ["/ok"]


@pytest.mark.parametrize("host", ["127。0。0。1", "127.0.0.1", "localhost"])
async def test_guarded_httpx_client_never_connects_to_loopback(internal: Internal, host: str) -> None:
    """httpx (the SDKs' client) normalises the ideographic full stop too; its network backend checks."""
    async with netguard.guarded_httpx_client(allow_private=False) as client:
        with pytest.raises(httpx.HTTPError) as err:
            await client.get(f"http://{host}:{internal.port}/admin")
        assert netguard.refusal(err.value) is not None
    async with netguard.guarded_httpx_client(allow_private=True) as client:
        resp = await client.get(f"http://{host}:{internal.port}/allowed")
        assert resp.json() == {"secret": "internal"}
    assert internal.hits == ["/allowed"]


@pytest.mark.parametrize("host", [*SPELLINGS, "localhost"])
async def test_http_tools_refuse_every_spelling(internal: Internal, host: str) -> None:
    spec = {"type": "function", "name": "lookup", "description": "d", "url": f"http://{host}:{internal.port}/t",
            "method": "POST"}
    tools = ToolExecutor([spec])
    try:
        outcome = await tools.run(ToolCall("c1", "lookup", "{}"))
    finally:
        await tools.aclose()
    assert outcome.error and "may not be reached" in outcome.content and "internal" not in outcome.content
    assert internal.hits == []


async def test_http_tools_pin_the_resolved_address(internal: Internal, monkeypatch: pytest.MonkeyPatch) -> None:
    """DNS rebinding: a name whose first answer is "public" (127.0.0.2 plays a public host here, nothing
    listens there) and whose later answers are loopback. The old tool code checked the first answer and
    let aiohttp resolve again; the guard resolves once, in the connector, and judges what it dials."""
    real_refusal = netguard.address_refusal
    monkeypatch.setattr(netguard, "address_refusal", lambda a: None if a == "127.0.0.2" else real_refusal(a))
    answers = iter(["127.0.0.2", "127.0.0.1", "127.0.0.1", "127.0.0.1"])
    real_getaddrinfo = socket.getaddrinfo

    def rebinding(host, port, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if host != "rebind.example":
            return real_getaddrinfo(host, port, *args, **kwargs)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), int(port)))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    spec = {"type": "function", "name": "lookup", "description": "d",
            "url": f"http://rebind.example:{internal.port}/t", "method": "GET"}
    tools = ToolExecutor([spec], timeout=2.0)
    try:
        first = await tools.run(ToolCall("c1", "lookup", "{}"))  # dials the checked 127.0.0.2: refused
        second = await tools.run(ToolCall("c2", "lookup", "{}"))  # the rebound answer: refused by the guard
    finally:
        await tools.aclose()
    assert first.error and "could not reach" in first.content
    assert second.error and "may not be reached" in second.content
    assert internal.hits == []


@pytest.mark.parametrize("host", [*SPELLINGS, "localhost"])
async def test_custom_llm_websocket_refuses_every_spelling(internal: Internal, host: str) -> None:
    engine = CustomLlmEngine(f"ws://{host}:{internal.port}/llm", "call-1", {}, allow_private=False,
                             connect_timeout=2.0)
    engine.start()
    try:
        with pytest.raises(ProviderError) as err:
            async for _ in engine.respond("hello"):
                pass
    finally:
        await engine.aclose()
    assert err.value.reason == "forbidden_address" and not err.value.retryable
    assert internal.hits == []
