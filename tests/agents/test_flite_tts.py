"""Real flite through the asyncio subprocess provider, and the local synthesiser that routes flite and espeak-ng
voices (falling back to espeak-ng when flite is missing)."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest
from agent_speech import children_named, same_audio

from agents.providers.base import ProviderError
from agents.providers.espeak_tts import EspeakTTS
from agents.providers.flite_tts import GAIN, FliteTTS, speed_to_stretch
from agents.providers.local_tts import LocalTTS
from agents.providers.sphinx_pool import normalise
from agents.providers.whisper_worker import WhisperService
from bench.stt import phone_line
from media.resample import Resampler, StreamResampler

LONG = " ".join(["This sentence is long enough to keep flite busy for a while."] * 150)


def flite_children() -> list[int]:
    return children_named("flite")


def flite_wav(text: str, voice: str, tmp: Path) -> tuple[np.ndarray, int]:
    (tmp / "in.txt").write_text(text)
    subprocess.run(["flite", "-voice", voice, "--setf", "duration_stretch=1.0", "-f", str(tmp / "in.txt"),
                    "-o", str(tmp / "out.wav")], check=True, timeout=30)
    with wave.open(str(tmp / "out.wav")) as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.int16), w.getframerate()


@pytest.mark.parametrize("rate", [8000, 16000, 24000])
async def test_sentence_at_the_requested_rate(rate: int, tmp_path: Path) -> None:
    tts = FliteTTS()
    stream = tts.synthesize("Hello, thanks for calling.", "kal16", rate)
    chunks = [c async for c in stream]
    out = np.concatenate(chunks)
    assert all(c.dtype == np.int16 for c in chunks)
    ref, ref_rate = flite_wav("Hello, thanks for calling.", "kal16", tmp_path)
    assert ref_rate == 16000
    ref = np.clip(ref.astype(np.float32) * GAIN["kal16"], -32768, 32767).astype(np.int16)  # kal is quiet
    whole = StreamResampler(ref_rate, rate)
    expected = np.concatenate([whole.process(ref), whole.flush()])
    # the provider's chunks are the samples of resampling flite's whole file at once (a few LSB of rounding)
    assert same_audio(out, expected)
    assert 0.8 < len(out) / rate < 3.0 and stream.samples == len(out)
    assert stream.first_audio_ms is not None and stream.first_audio_ms < 1000
    await tts.aclose()


async def test_speed_changes_the_duration() -> None:
    assert speed_to_stretch(None) == 1.0 and speed_to_stretch(2.0) == 0.5 and speed_to_stretch(0.5) == 2.0
    assert speed_to_stretch(0.1) == 2.0 and speed_to_stretch(10) == 0.5
    tts = FliteTTS()
    normal = await tts.synthesize("One two three four five six.", "kal16", 8000).collect()
    slow = await tts.synthesize("One two three four five six.", "kal16", 8000, speed=0.5).collect()
    fast = await tts.synthesize("One two three four five six.", "kal16", 8000, speed=2.0).collect()
    assert len(slow) > 1.7 * len(normal) and len(normal) > 1.7 * len(fast)


async def test_other_voices_and_option_like_text() -> None:
    tts = FliteTTS()
    out = await tts.synthesize("--help -voice /etc/passwd", "slt", 16000).collect()
    assert len(out) > 16000 * 0.8  # spoken, not parsed as options
    assert len(await tts.synthesize("   ", "kal16", 16000).collect()) == 0


@pytest.mark.parametrize("voice", ["nosuch", "/tmp/x.flitevox", "http://127.0.0.1/v.flitevox", "-h", ""])
async def test_bad_voice_is_refused_before_any_process(voice: str) -> None:
    tts = FliteTTS()
    with pytest.raises(ProviderError) as e:
        await tts.synthesize("Hello.", voice, 16000).collect()
    assert e.value.retryable is False and e.value.reason == "bad_voice" and e.value.provider == "flite"
    assert flite_children() == []


async def test_missing_executable_is_not_installed() -> None:
    tts = FliteTTS(executable="/nonexistent/flite")
    assert not tts.available and FliteTTS().available
    with pytest.raises(ProviderError) as e:
        await tts.synthesize("Hello.", "kal16", 16000).collect()
    assert e.value.reason == "not_installed" and e.value.retryable is False


async def wait_for_flite() -> None:
    """Until this process has a flite child (the synthesis is running): polled, flite gives no other sign."""
    for _ in range(2000):
        if flite_children():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("flite never started")


async def test_cancelling_the_consumer_kills_the_process() -> None:
    tts = FliteTTS()

    async def speak() -> None:
        async with tts.synthesize(LONG, "slt", 16000) as audio:
            async for _ in audio:
                await asyncio.sleep(10)

    task = asyncio.create_task(speak())
    await wait_for_flite()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert flite_children() == []
    assert tts._dir is not None and list(tts._dir.iterdir()) == []  # its text and WAV files are removed too
    await tts.aclose()
    assert tts._dir is None


async def test_aclose_while_synthesising_kills_the_process() -> None:
    tts = FliteTTS()
    stream = tts.synthesize(LONG, "slt", 16000)
    first = asyncio.create_task(stream.__anext__())
    await wait_for_flite()
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    await stream.aclose()
    assert flite_children() == []


async def test_concurrent_sentences_are_bounded() -> None:
    tts = FliteTTS(max_concurrent=2)
    outs = await asyncio.gather(*(tts.synthesize(f"Sentence number {i}.", "kal16", 8000).collect() for i in range(6)))
    assert all(len(o) > 4000 for o in outs)


def test_works_under_uvloop() -> None:
    """The server runs on uvloop, whose subprocess pipes are sockets (flite cannot open those as a file)."""
    import uvloop

    async def speak() -> np.ndarray:
        tts = FliteTTS()
        try:
            return await tts.synthesize("Hello from the server's own event loop.", "kal16", 8000).collect()
        finally:
            await tts.aclose()

    assert len(uvloop.run(speak())) > 8000


async def test_round_trip_through_a_phone_line_is_understood() -> None:
    """flite → 8 kHz G.711 μ-law (noise floor) → 16 kHz → the local Whisper base model (the hybrid's)."""
    said = "Your appointment is confirmed for Thursday afternoon."
    pcm = await FliteTTS().synthesize(said, "kal16", 8000).collect()
    whisper = WhisperService()
    try:
        result = await whisper.transcribe(Resampler(8000, 16000).process(phone_line(pcm, 8000, seed=3)))
    finally:
        await whisper.aclose()
    assert normalise(result.text) == normalise(said)


# ---------------------------------------------------------------- the local synthesiser (flite + espeak-ng)
async def test_local_tts_routes_by_voice() -> None:
    local = LocalTTS()
    via_local = await local.synthesize("Good morning.", "flite:kal16", 8000).collect()
    direct = await FliteTTS().synthesize("Good morning.", "kal16", 8000).collect()
    assert same_audio(via_local, direct)
    via_local = await local.synthesize("Good morning.", "en-us", 8000).collect()
    direct = await EspeakTTS().synthesize("Good morning.", "en-us", 8000).collect()
    assert same_audio(via_local, direct)
    with pytest.raises(ProviderError) as e:
        await local.synthesize("Good morning.", "flite:nosuch", 8000).collect()
    assert e.value.reason == "bad_voice"
    await local.aclose()


async def test_missing_flite_falls_back_to_espeak_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    local = LocalTTS(flite=FliteTTS(executable="/nonexistent/flite"))
    with caplog.at_level(logging.WARNING, logger="agents.providers.local_tts"):
        male = await local.synthesize("Good morning.", "flite:kal16", 8000).collect()
        female = await local.synthesize("Good morning.", "flite:slt", 8000).collect()
    assert local.flite_missing
    espeak = EspeakTTS()
    assert same_audio(male, await espeak.synthesize("Good morning.", "en-us", 8000).collect())
    assert same_audio(female, await espeak.synthesize("Good morning.", "en-us+f3", 8000).collect())
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "espeak-ng" in warnings[0].getMessage()
