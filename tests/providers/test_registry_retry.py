"""Provider selection (registry), the retry helper, and the voice catalog's cloud voices."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import numpy as np
import pytest
from fake_elevenlabs import FakeElevenLabs
from fake_openai_audio import FakeOpenAIAudio, Text
from speech_helpers import Collector, tone

from agents.providers import registry
from agents.providers.base import ProviderError
from agents.providers.deepgram_stt import DeepgramSTT
from agents.providers.elevenlabs_tts import ElevenLabsTTS
from agents.providers.openai_stt import OpenAISTT
from agents.providers.openai_tts import OpenAITTS
from agents.providers.retry import RetryPolicy, call_with_retry, stream_with_retry
from agents.voices import Voice, VoiceCatalog, cloud_voices

ENV = ("DEEPGRAM_API_KEY", "OPENAI_API_KEY", "GROQ_API_KEY", "ELEVENLABS_API_KEY", "DEEPGRAM_BASE_URL",
       "OPENAI_BASE_URL", "GROQ_BASE_URL", "ELEVENLABS_BASE_URL")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


def keys_of(table: dict[tuple[str, str], str]) -> registry.KeyLookup:
    async def lookup(provider_type: str, provider_name: str) -> str | None:
        return table.get((provider_type, provider_name))

    return lookup


LOCAL_STT, LOCAL_TTS = object(), object()
NO_KEYS = keys_of({})
VOICES = {v.voice_id: v for v in cloud_voices()}
ESPEAK = Voice("espeak-en-us", "English", "espeak", "en-US", "male", "", "en-us")
ESPEAK_F = Voice("espeak-en-us-f", "English female", "espeak", "en-US", "female", "", "en-us+f3")


# ---------------------------------------------------------------- selection


async def test_local_stt_unless_a_cloud_provider_is_asked_for() -> None:
    assert await registry.make_stt(None, NO_KEYS, local=LOCAL_STT) is LOCAL_STT  # type: ignore[arg-type]
    assert await registry.make_stt({"provider": "local"}, NO_KEYS, local=LOCAL_STT) is LOCAL_STT  # type: ignore[arg-type]


async def test_cloud_stt_with_the_organization_key() -> None:
    stt = await registry.make_stt({"provider": "deepgram", "model": "nova-2"},
                                  keys_of({("stt", "deepgram"): "dg"}), language="en-GB")
    assert isinstance(stt, DeepgramSTT) and stt.model == "nova-2" and stt.language == "en-GB"
    stt = await registry.make_stt({"provider": "groq"}, keys_of({("stt", "groq"): "gq"}), language="fr-FR")
    assert isinstance(stt, OpenAISTT) and stt.provider == "groq" and stt.model == "whisper-large-v3"
    assert str(stt.client.base_url).rstrip("/") == "https://api.groq.com/openai/v1" and stt.language == "fr"
    stt = await registry.make_stt({"provider": "openai"}, keys_of({("llm", "openai"): "sk"}))  # another type's key
    assert isinstance(stt, OpenAISTT) and stt.client.api_key == "sk" and stt.model == "gpt-4o-mini-transcribe"
    await stt.aclose()


async def test_env_key_and_base_url_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPGRAM_API_KEY", "env-dg")
    monkeypatch.setenv("DEEPGRAM_BASE_URL", "http://127.0.0.1:1234")
    stt = await registry.make_stt({"provider": "deepgram"}, NO_KEYS, local=LOCAL_STT)  # type: ignore[arg-type]
    assert isinstance(stt, DeepgramSTT)
    assert stt.client._client_wrapper.get_environment().production == "ws://127.0.0.1:1234"
    assert stt.client._client_wrapper.api_key == "env-dg"


async def test_missing_key_falls_back_to_local_and_says_why(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "agents.providers.registry")
    assert await registry.make_stt({"provider": "deepgram"}, NO_KEYS, local=LOCAL_STT) is LOCAL_STT  # type: ignore[arg-type]
    assert "no deepgram key" in caplog.text and "DEEPGRAM_API_KEY" in caplog.text
    assert await registry.make_stt({"provider": "whisperx"}, NO_KEYS, local=LOCAL_STT) is LOCAL_STT  # type: ignore[arg-type]
    assert "unknown STT provider" in caplog.text
    voice = VOICES["elevenlabs-rachel"]
    assert await registry.make_tts(voice, NO_KEYS, local=LOCAL_TTS) is LOCAL_TTS  # type: ignore[arg-type]
    assert "voice elevenlabs-rachel falls back to the local voice" in caplog.text


async def test_lookup_failure_is_a_missing_key(caplog: pytest.LogCaptureFixture) -> None:
    async def broken(provider_type: str, provider_name: str) -> str | None:
        raise RuntimeError("database down")

    assert await registry.make_stt({"provider": "openai"}, broken, local=LOCAL_STT) is LOCAL_STT  # type: ignore[arg-type]


async def test_tts_by_voice_provider() -> None:
    keys = keys_of({("tts", "openai"): "sk", ("tts", "elevenlabs"): "el"})
    assert await registry.make_tts(ESPEAK, keys, local=LOCAL_TTS) is LOCAL_TTS  # type: ignore[arg-type]
    tts = await registry.make_tts(VOICES["openai-nova"], keys)
    assert isinstance(tts, OpenAITTS) and tts.model == "gpt-4o-mini-tts"
    await tts.aclose()
    el = await registry.make_tts(VOICES["elevenlabs-adam"], keys,
                                 voice_settings={"stability": 0.3, "similarity_boost": None, "speed": 0.9})
    assert isinstance(el, ElevenLabsTTS) and el.voice_settings == {"stability": 0.3, "speed": 0.9}
    await el.aclose()


def test_fallback_voice_keeps_the_gender() -> None:
    catalog = VoiceCatalog([ESPEAK, ESPEAK_F, *cloud_voices()])
    assert registry.fallback_voice(VOICES["openai-nova"], catalog) is ESPEAK_F
    assert registry.fallback_voice(VOICES["openai-onyx"], catalog) is ESPEAK
    assert registry.fallback_voice(ESPEAK_F, catalog) is ESPEAK_F
    assert registry.fallback_voice(VOICES["openai-alloy"], VoiceCatalog([])).engine_voice == "en-us"


@pytest.fixture
async def openai_server() -> AsyncIterator[FakeOpenAIAudio]:
    fake = await FakeOpenAIAudio().start()
    yield fake
    await fake.stop()


@pytest.fixture
async def eleven_server() -> AsyncIterator[FakeElevenLabs]:
    fake = await FakeElevenLabs().start()
    yield fake
    await fake.stop()


async def test_selected_providers_reach_their_servers(monkeypatch: pytest.MonkeyPatch,
                                                      openai_server: FakeOpenAIAudio,
                                                      eleven_server: FakeElevenLabs) -> None:
    """What a call does: choose by agent settings and voice, with base URLs from the environment."""
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.base_url)
    monkeypatch.setenv("ELEVENLABS_BASE_URL", eleven_server.base_url)
    keys = keys_of({("stt", "openai"): openai_server.key, ("tts", "elevenlabs"): eleven_server.key})
    stt = await registry.make_stt({"provider": "openai", "model": "whisper-1"}, keys, language="en-US")
    tts = await registry.make_tts(VOICES["elevenlabs-rachel"], keys, voice_settings={"speed": 1.0})
    openai_server.script = [Text("hello")]
    stream = stt.stream()
    c = Collector(stream)
    stream.push_audio(tone(300, 0.3))
    stream.flush()
    assert (await c.final(1)).text == "hello"
    pcm = await tts.synthesize("Hi there.", VOICES["elevenlabs-rachel"].engine_voice, 8000).collect()
    assert len(pcm) == 4000 and eleven_server.requests[0].voice_id == "21m00Tcm4TlvDq8ikWAM"
    await c.close()
    ended = asyncio.Event()
    closer = asyncio.create_task(registry.close_when(ended, [stt, tts]))
    ended.set()
    await closer
    assert stt.client.is_closed()


async def test_close_when_closes_on_cancel_too() -> None:
    closed: list[str] = []

    class P:
        async def aclose(self) -> None:
            closed.append("x")

    task = asyncio.create_task(registry.close_when(asyncio.Event(), [P(), P()]))  # type: ignore[list-item]
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert closed == ["x", "x"]


# ---------------------------------------------------------------- retry helper

POLICY = RetryPolicy(retries=2, backoff=(0.01, 0.02), budget_s=1.0)


def test_policy_delays_and_budget() -> None:
    p = RetryPolicy(retries=2, backoff=(0.1, 0.3), budget_s=0.5)
    assert p.delay(1, 0.0) == 0.1 and p.delay(2, 0.1) == 0.3 and p.delay(3, 0.0) is None
    assert p.delay(2, 0.3) is None  # would start after the budget


async def test_call_with_retry() -> None:
    calls: list[int] = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ProviderError("busy", retryable=True, reason="rate_limited")
        return "ok"

    assert await call_with_retry(flaky, POLICY) == "ok" and len(calls) == 3

    async def bad() -> str:
        calls.append(1)
        raise ProviderError("no", retryable=False, reason="auth")

    calls.clear()
    with pytest.raises(ProviderError):
        await call_with_retry(bad, POLICY)
    assert len(calls) == 1


async def test_stream_with_retry_only_before_output() -> None:
    attempts: list[int] = []

    def failing_before() -> AsyncIterator[np.ndarray]:
        async def gen() -> AsyncIterator[np.ndarray]:
            attempts.append(1)
            if len(attempts) == 1:
                raise ProviderError("503", retryable=True, reason="server_error")
            yield np.ones(10, np.int16)

        return gen()

    out = [c async for c in stream_with_retry(failing_before, POLICY)]
    assert len(out) == 1 and len(attempts) == 2

    attempts.clear()

    def failing_after() -> AsyncIterator[np.ndarray]:
        async def gen() -> AsyncIterator[np.ndarray]:
            attempts.append(1)
            yield np.ones(10, np.int16)
            raise ProviderError("reset", retryable=True, reason="connection")

        return gen()

    got = []
    with pytest.raises(ProviderError) as info:
        async for c in stream_with_retry(failing_after, POLICY):
            got.append(c)
    assert len(got) == 1 and len(attempts) == 1 and not info.value.retryable


# ---------------------------------------------------------------- catalog


def test_cloud_voices_are_filtered_by_available_providers() -> None:
    catalog = VoiceCatalog([ESPEAK, ESPEAK_F, *cloud_voices()])
    assert {v.provider for v in catalog.search(available=set())} == {"espeak"}
    names = {v.voice_id for v in catalog.search(available={"openai"})}
    assert {"openai-alloy", "openai-nova", "espeak-en-us"} <= names and "elevenlabs-rachel" not in names
    assert catalog.get("elevenlabs-rachel").engine_voice == "21m00Tcm4TlvDq8ikWAM"  # type: ignore[union-attr]
    female = catalog.search(language="en-US", gender="female", available={"elevenlabs"})
    assert {v.provider for v in female} == {"espeak", "elevenlabs"}
    assert all(v.gender == "female" for v in female)
    assert len(catalog.search()) == 2 + len(cloud_voices())  # no filter: everything (agent validation)
