"""ElevenLabsTTS through the real `elevenlabs` SDK against a loopback server speaking its streaming endpoint."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest
from fake_elevenlabs import Fail, FakeElevenLabs, Tone
from speech_helpers import dominant_freq

from agents.providers.base import ProviderError
from agents.providers.elevenlabs_tts import ElevenLabsTTS
from agents.providers.retry import RetryPolicy

RACHEL = "21m00Tcm4TlvDq8ikWAM"
FAST = RetryPolicy(retries=2, backoff=(0.01, 0.02), budget_s=2.0)


@pytest.fixture
async def server() -> AsyncIterator[FakeElevenLabs]:
    fake = await FakeElevenLabs().start()
    yield fake
    await fake.stop()


def make(server: FakeElevenLabs, **kw: object) -> ElevenLabsTTS:
    kw.setdefault("policy", FAST)
    return ElevenLabsTTS(api_key=kw.pop("api_key", server.key), base_url=server.base_url, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("rate", "asked"), [(8000, "pcm_8000"), (16000, "pcm_16000"), (12000, "pcm_16000")])
async def test_streams_pcm_with_voice_settings(server: FakeElevenLabs, rate: int, asked: str) -> None:
    server.script = [Tone(freq=600, seconds=0.5)]
    tts = make(server, voice_settings={"stability": 0.4, "similarity_boost": 0.8, "speed": 1.1})
    async with tts.synthesize("Welcome to Switchboard.", RACHEL, rate) as audio:
        chunks = [c async for c in audio]
    await tts.aclose()
    pcm = np.concatenate(chunks)
    assert len(chunks) > 1 and abs(len(pcm) - 0.5 * rate) <= rate * 0.01
    assert abs(dominant_freq(pcm, rate) - 600) < 15
    req = server.requests[0]
    assert req.voice_id == RACHEL and req.query["output_format"] == asked
    assert req.headers["xi-api-key"] == server.key
    assert req.body["text"] == "Welcome to Switchboard." and req.body["model_id"] == "eleven_flash_v2_5"
    assert req.body["voice_settings"] == {"stability": 0.4, "similarity_boost": 0.8, "speed": 1.1}


async def test_speed_argument_overrides_and_is_clamped(server: FakeElevenLabs) -> None:
    tts = make(server, voice_settings={"stability": 0.5})
    await tts.synthesize("Fast.", RACHEL, 16000, speed=2.0).collect()
    await tts.aclose()
    assert server.requests[0].body["voice_settings"] == {"stability": 0.5, "speed": 1.2}


async def test_retries_before_the_first_audio(server: FakeElevenLabs) -> None:
    server.script = [Fail(429, "too_many_concurrent_requests"), Fail(500), Tone(freq=300, seconds=0.3)]
    tts = make(server)
    pcm = await tts.synthesize("Again.", RACHEL, 16000).collect()
    await tts.aclose()
    assert abs(dominant_freq(pcm, 16000) - 300) < 10 and len(server.requests) == 3


async def test_cut_after_audio_is_not_retried(server: FakeElevenLabs) -> None:
    server.script = [Tone(seconds=1.0, cut_after=6400), Tone()]
    tts = make(server)
    got: list[np.ndarray] = []
    with pytest.raises(ProviderError) as info:
        async with tts.synthesize("Cut.", RACHEL, 16000) as audio:
            async for chunk in audio:
                got.append(chunk)
    await tts.aclose()
    assert got and not info.value.retryable and info.value.reason == "connection"
    assert len(server.requests) == 1


@pytest.mark.parametrize(("voice", "key", "status_reason"), [
    (RACHEL, "wrong", "auth"),
    ("no-such-voice", None, "not_found"),
])
async def test_client_errors_are_final(server: FakeElevenLabs, voice: str, key: str | None,
                                       status_reason: str) -> None:
    tts = make(server, api_key=key or server.key)
    with pytest.raises(ProviderError) as info:
        await tts.synthesize("Hello.", voice, 8000).collect()
    await tts.aclose()
    assert not info.value.retryable and info.value.reason == status_reason
    assert info.value.provider == "elevenlabs" and len(server.requests) == 1


async def test_validation_error_is_final(server: FakeElevenLabs) -> None:
    tts = make(server)
    tts.voice_settings = {"stability": 3.0}  # bypasses the constructor's filter: the server refuses it
    with pytest.raises(ProviderError) as info:
        await tts.synthesize("Hello.", RACHEL, 8000).collect()
    await tts.aclose()
    assert not info.value.retryable and info.value.reason == "bad_request" and "422" in info.value.message


async def test_unreachable_server_is_retryable() -> None:
    tts = ElevenLabsTTS(api_key="k", base_url="http://127.0.0.1:9", policy=RetryPolicy(retries=1, backoff=(0.01,)))
    with pytest.raises(ProviderError) as info:
        await tts.synthesize("Hello.", RACHEL, 8000).collect()
    await tts.aclose()
    assert info.value.retryable and info.value.reason in ("connection", "timeout")
