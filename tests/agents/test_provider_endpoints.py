"""Whose key goes to which URL (issue 9.3): the operator's keys never leave for a tenant's base_url, a failed
key lookup is an error, and the llm engine's base_url goes through the SSRF guard. A loopback
OpenAI-compatible server records every Authorization header it is sent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from agents.engines import LlmEngine, RetrievalEngine
from agents.factory import build_engine
from agents.providers import registry
from agents.providers.base import ProviderError, TextDelta
from agents.providers.registry import KeyLookupError, ServerProviders, endpoint
from tests.agents.fake_openai import FakeOpenAI, Reply

OPERATOR_KEY = "sk-operator-secret"


@pytest.fixture
async def tenant_server() -> AsyncIterator[FakeOpenAI]:
    server = await FakeOpenAI().start()
    yield server
    await server.stop()


@pytest.fixture(autouse=True)
def operator_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_BASE_URL", "GROQ_BASE_URL", "GROQ_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", OPERATOR_KEY)


def keys_of(table: dict[tuple[str, str], str]) -> registry.KeyLookup:
    async def lookup(provider_type: str, provider_name: str) -> str | None:
        return table.get((provider_type, provider_name))

    return lookup


async def broken(provider_type: str, provider_name: str) -> str | None:
    raise ConnectionError("database down")


def agent_for(base_url: str, provider: str = "openai") -> dict[str, Any]:
    return {"response_engine": {"type": "llm", "llm_provider": provider, "base_url": base_url, "llm_model": "m"}}


async def speak(engine: Any) -> str:
    try:
        return "".join([e.text async for e in engine.respond("hello") if isinstance(e, TextDelta)])
    finally:
        await engine.aclose()


def authorizations(server: FakeOpenAI) -> list[str]:
    return [h.get("Authorization", "") for h in server.headers]


async def test_the_operator_key_never_reaches_a_tenant_base_url(tenant_server: FakeOpenAI) -> None:
    """Today: no org key → the server's OPENAI_API_KEY is sent to whatever base_url the tenant sets."""
    tenant_server.script = [Reply(["Hi."])]
    engine = await build_engine(agent_for(tenant_server.base_url), {}, keys=keys_of({}), allow_private_tools=True)
    assert isinstance(engine, LlmEngine)
    assert await speak(engine) == "Hi."
    assert len(tenant_server.headers) == 1
    assert all(OPERATOR_KEY not in value for h in tenant_server.headers for value in h.values())


async def test_the_tenant_key_goes_to_the_tenant_base_url(tenant_server: FakeOpenAI) -> None:
    tenant_server.script = [Reply(["Hi."])]
    engine = await build_engine(agent_for(tenant_server.base_url), {}, keys=keys_of({("llm", "openai"): "sk-tenant"}),
                                allow_private_tools=True)
    assert await speak(engine) == "Hi."
    assert authorizations(tenant_server) == ["Bearer sk-tenant"]


async def test_an_unknown_provider_name_never_reads_the_server_environment(tenant_server: FakeOpenAI,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The old code read f"{provider.upper()}_API_KEY" for any provider name a tenant wrote."""
    monkeypatch.setenv("SECRETSTORE_API_KEY", "operator-other-secret")
    tenant_server.script = [Reply(["Hi."])]
    engine = await build_engine(agent_for(tenant_server.base_url, "secretstore"), {}, keys=keys_of({}),
                                allow_private_tools=True)
    assert await speak(engine) == "Hi."
    assert all("operator-other-secret" not in v for h in tenant_server.headers for v in h.values())


async def test_a_failed_key_lookup_is_an_error_not_the_operator_key(tenant_server: FakeOpenAI,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(KeyLookupError):
        await endpoint("openai", "llm", broken)
    engine = await build_engine(agent_for(tenant_server.base_url), {}, keys=broken, allow_private_tools=True)
    assert isinstance(engine, RetrievalEngine)
    # and with no tenant URL (the provider's own endpoint, here the operator-configured one): no fallback either
    monkeypatch.setenv("OPENAI_BASE_URL", tenant_server.base_url)
    engine = await build_engine({"response_engine": {"type": "llm"}}, {}, keys=broken)
    assert isinstance(engine, RetrievalEngine)
    for provider_type, provider in (("stt", "openai"), ("tts", "openai")):
        with pytest.raises(KeyLookupError):
            await endpoint(provider, provider_type, broken)
    assert tenant_server.headers == []


async def test_the_operator_key_goes_to_the_operator_endpoint(tenant_server: FakeOpenAI,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """OPENAI_BASE_URL is the operator's own choice: its key goes there, also when an agent names it."""
    monkeypatch.setenv("OPENAI_BASE_URL", tenant_server.base_url)
    tenant_server.script = [Reply(["One."]), Reply(["Two."])]
    engine = await build_engine({"response_engine": {"type": "llm", "llm_model": "m"}}, {}, keys=keys_of({}))
    assert await speak(engine) == "One."
    engine = await build_engine(agent_for(tenant_server.base_url + "/"), {}, keys=keys_of({}))
    assert await speak(engine) == "Two."
    assert authorizations(tenant_server) == [f"Bearer {OPERATOR_KEY}"] * 2


def test_the_registry_is_one_table_fed_by_settings() -> None:
    server = ServerProviders.from_env({"OPENAI_API_KEY": "a", "DEEPGRAM_BASE_URL": "http://10.0.0.5:8080",
                                       "UNRELATED_API_KEY": "x"})
    assert dict(server.keys) == {"openai": "a"}
    assert server.base_url("deepgram") == "http://10.0.0.5:8080"
    assert server.base_url("groq") == "https://api.groq.com/openai/v1"
    assert server.is_operator_endpoint("openai", "https://API.openai.com:443/v1/")
    assert not server.is_operator_endpoint("openai", "https://api.openai.com.evil.example/v1")


@pytest.mark.parametrize("host", ["①②⑦.0.0.1", "１２７.０.０.１", "127。0。0。1", "localhost"])
async def test_an_llm_base_url_on_loopback_is_never_reached(tenant_server: FakeOpenAI, host: str) -> None:
    """Today the llm engine's base_url is not checked at all: a call's transcript was POSTed to loopback."""
    port = tenant_server.base_url.rsplit(":", 1)[1].split("/")[0]
    tenant_server.script = [Reply(["leaked"])]
    engine = await build_engine(agent_for(f"http://{host}:{port}/v1"), {}, keys=keys_of({("llm", "openai"): "k"}),
                                allow_private_tools=False)
    if isinstance(engine, LlmEngine):  # a name: refused where it is resolved, when the turn connects
        with pytest.raises(ProviderError):
            await speak(engine)
    assert tenant_server.requests == []
