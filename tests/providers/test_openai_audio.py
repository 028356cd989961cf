"""OpenAISTT and OpenAITTS through the real `openai` SDK against a loopback server speaking OpenAI's audio
endpoints (transcriptions: multipart WAV upload; speech: streamed 24 kHz pcm)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import numpy as np
import pytest
from fake_openai_audio import Fail, FakeOpenAIAudio, Text, Tone
from speech_helpers import Collector, dominant_freq, tone

from agents.providers.base import ProviderError
from agents.providers.openai_stt import OpenAISTT
from agents.providers.openai_tts import OpenAITTS
from agents.providers.retry import RetryPolicy

FAST = RetryPolicy(retries=2, backoff=(0.01, 0.02), budget_s=2.0)


@pytest.fixture
async def server() -> AsyncIterator[FakeOpenAIAudio]:
    fake = await FakeOpenAIAudio().start()
    yield fake
    await fake.stop()


# ---------------------------------------------------------------- transcription


async def test_transcribes_each_utterance_as_a_wav(server: FakeOpenAIAudio) -> None:
    server.script = [Text("What time do you open?"), Text("Thanks.")]
    stt = OpenAISTT(api_key=server.key, base_url=server.base_url, model="gpt-4o-mini-transcribe",
                    language="en-US", policy=FAST)
    stream = stt.stream(phrases=["opening hours", "book a table"])
    c = Collector(stream)
    first, second = tone(300, 0.6), tone(600, 0.4)
    stream.push_audio(first[:4000])
    stream.push_audio(first[4000:])
    stream.flush()
    stream.push_audio(second)
    stream.end_input()
    t1, t2 = await c.final(1), await c.final(2)
    await asyncio.wait_for(c.ended.wait(), 5)
    await stt.aclose()
    assert (t1.text, t2.text) == ("What time do you open?", "Thanks.")
    assert (t1.start_ms, t1.end_ms, t2.start_ms, t2.end_ms) == (0, 600, 600, 1000)
    assert t1.latency_ms > 0 and c.error is None and c.interims == []
    up = server.uploads[0]
    assert (up.rate, up.channels, up.width) == (16000, 1, 2)
    assert np.array_equal(up.pcm, first) and np.array_equal(server.uploads[1].pcm, second)
    assert up.filename.endswith(".wav")
    assert up.fields["model"] == "gpt-4o-mini-transcribe" and up.fields["language"] == "en"
    assert up.fields["response_format"] == "json"
    assert "opening hours" in up.fields["prompt"]


async def test_groq_uses_the_same_protocol(server: FakeOpenAIAudio) -> None:
    server.script = [Text("hola")]
    stt = OpenAISTT(api_key=server.key, base_url=server.base_url, model="whisper-large-v3", provider="groq",
                    language="es-ES", policy=FAST)
    stream = stt.stream()
    c = Collector(stream)
    stream.push_audio(tone(300, 0.3))
    stream.flush()
    assert (await c.final(1)).text == "hola"
    assert server.uploads[0].fields["model"] == "whisper-large-v3"
    assert server.uploads[0].fields["language"] == "es"
    await c.close()
    await stt.aclose()


async def test_transcription_retries_transient_errors(server: FakeOpenAIAudio) -> None:
    server.script = [Fail(429, "Rate limit reached", "requests"), Fail(503, "overloaded"), Text("ok then")]
    stt = OpenAISTT(api_key=server.key, base_url=server.base_url, policy=FAST)
    stream = stt.stream()
    c = Collector(stream)
    stream.push_audio(tone(300, 0.3))
    stream.flush()
    assert (await c.final(1)).text == "ok then"
    assert len(server.uploads) == 3
    await c.close()
    await stt.aclose()


@pytest.mark.parametrize(("status", "reason"), [(401, "auth"), (400, "bad_request")])
async def test_transcription_client_errors_are_final(server: FakeOpenAIAudio, status: int, reason: str) -> None:
    server.script = [Fail(status, "no", "invalid_request_error")]
    key = "wrong" if status == 401 else server.key
    stt = OpenAISTT(api_key=key, base_url=server.base_url, policy=FAST)
    stream = stt.stream()
    c = Collector(stream)
    stream.push_audio(tone(300, 0.3))
    stream.flush()
    err = await c.failure()
    assert not err.retryable and err.reason == reason and err.provider == "openai"
    assert server.requests == 1
    await stt.aclose()


async def test_transcription_gives_up_after_the_budget(server: FakeOpenAIAudio) -> None:
    server.script = [Fail(500, "boom")] * 5
    stt = OpenAISTT(api_key=server.key, base_url=server.base_url, policy=FAST)
    stream = stt.stream()
    c = Collector(stream)
    stream.push_audio(tone(300, 0.3))
    stream.flush()
    err = await c.failure()
    assert err.retryable and err.reason == "server_error" and server.requests == 3
    await stt.aclose()


async def test_too_short_audio_is_not_sent(server: FakeOpenAIAudio) -> None:
    stt = OpenAISTT(api_key=server.key, base_url=server.base_url, policy=FAST)
    stream = stt.stream()
    c = Collector(stream)
    stream.push_audio(tone(300, 0.05))
    stream.flush()
    assert (await c.final(1)).text == ""
    assert server.requests == 0
    await c.close()
    await stt.aclose()


# ---------------------------------------------------------------- speech


@pytest.mark.parametrize("rate", [8000, 16000, 24000])
async def test_speech_streams_pcm_resampled(server: FakeOpenAIAudio, rate: int) -> None:
    server.script = [Tone(freq=500, seconds=0.6)]
    tts = OpenAITTS(api_key=server.key, base_url=server.base_url, model="gpt-4o-mini-tts", policy=FAST)
    async with tts.synthesize("Hello, how can I help?", "coral", rate, speed=1.2) as audio:
        chunks = [c async for c in audio]
    await tts.aclose()
    pcm = np.concatenate(chunks)
    assert len(chunks) > 1 and pcm.dtype == np.int16
    assert abs(len(pcm) - 0.6 * rate) <= rate * 0.01
    assert abs(dominant_freq(pcm, rate) - 500) < 10
    assert audio.first_audio_ms is not None
    assert server.speech == [{"model": "gpt-4o-mini-tts", "voice": "coral", "input": "Hello, how can I help?",
                              "response_format": "pcm", "speed": 1.2}]


async def test_speech_retries_before_the_first_audio(server: FakeOpenAIAudio) -> None:
    server.script = [Fail(503, "overloaded"), Fail(429, "slow down", "requests"), Tone(freq=400, seconds=0.3)]
    tts = OpenAITTS(api_key=server.key, base_url=server.base_url, policy=FAST)
    async with tts.synthesize("Retry me.", "alloy", 8000) as audio:
        pcm = await audio.collect()
    await tts.aclose()
    assert abs(dominant_freq(pcm, 8000) - 400) < 15 and len(server.speech) == 3


async def test_speech_cut_after_audio_is_not_retried(server: FakeOpenAIAudio) -> None:
    """Audio already came out: a retry would repeat it, so the failure is final."""
    server.script = [Tone(seconds=1.0, cut_after=9600), Tone()]
    tts = OpenAITTS(api_key=server.key, base_url=server.base_url, policy=FAST)
    got: list[np.ndarray] = []
    with pytest.raises(ProviderError) as info:
        async with tts.synthesize("Cut me off.", "alloy", 16000) as audio:
            async for chunk in audio:
                got.append(chunk)
    await tts.aclose()
    assert got and not info.value.retryable and info.value.reason == "connection"
    assert len(server.speech) == 1


@pytest.mark.parametrize(("status", "reason"), [(401, "auth"), (400, "bad_request")])
async def test_speech_client_errors_are_final(server: FakeOpenAIAudio, status: int, reason: str) -> None:
    server.script = [Fail(status, "bad", "invalid_request_error")]
    tts = OpenAITTS(api_key="wrong" if status == 401 else server.key, base_url=server.base_url, policy=FAST)
    with pytest.raises(ProviderError) as info:
        await tts.synthesize("Nope.", "alloy", 8000).collect()
    await tts.aclose()
    assert not info.value.retryable and info.value.reason == reason and server.requests == 1


async def test_speech_cancelled_consumer_stops_the_request(server: FakeOpenAIAudio) -> None:
    """Barge-in: leaving the `async with` early closes the HTTP stream at once."""
    server.script = [Tone(seconds=5.0, chunk=2400)]
    tts = OpenAITTS(api_key=server.key, base_url=server.base_url, policy=FAST)
    t0 = time.perf_counter()
    async with tts.synthesize("A long sentence.", "alloy", 8000) as audio:
        async for _ in audio:
            break
    await tts.aclose()
    assert time.perf_counter() - t0 < 1.0


async def test_unreachable_server_is_retryable() -> None:
    tts = OpenAITTS(api_key="k", base_url="http://127.0.0.1:9/v1", policy=RetryPolicy(retries=1, backoff=(0.01,)))
    with pytest.raises(ProviderError) as info:
        await tts.synthesize("Hello.", "alloy", 8000).collect()
    await tts.aclose()
    assert info.value.retryable and info.value.reason in ("connection", "timeout")
