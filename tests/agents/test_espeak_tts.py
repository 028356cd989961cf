"""Real espeak-ng through the asyncio subprocess provider."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from agent_speech import children_named, espeak_wav, same_audio

from agents.providers.base import ProviderError
from agents.providers.espeak_tts import EspeakTTS, parse_wav_header, speed_to_wpm
from media.resample import StreamResampler

LONG = " ".join(["This sentence is long enough to keep espeak busy for a while."] * 40)


def espeak_children() -> list[int]:
    return children_named("espeak-ng")


@pytest.mark.parametrize("rate", [8000, 16000, 24000])
async def test_sentence_is_resampled_like_the_whole_file(rate: int) -> None:
    tts = EspeakTTS()
    stream = tts.synthesize("Hello, thanks for calling.", "en-us", rate)
    chunks = [c async for c in stream]
    out = np.concatenate(chunks)
    assert all(c.dtype == np.int16 for c in chunks)
    ref, ref_rate = espeak_wav("Hello, thanks for calling.")
    whole = StreamResampler(ref_rate, rate)
    expected = np.concatenate([whole.process(ref), whole.flush()])
    # streaming chunk by chunk gives the samples of resampling the whole file at once (a few LSB of rounding)
    assert same_audio(out, expected)
    assert 0.8 < len(out) / rate < 3.0
    assert stream.first_audio_ms is not None and stream.first_audio_ms < 500
    assert stream.samples == len(out)


async def test_speed_maps_to_words_per_minute() -> None:
    assert speed_to_wpm(None) == 175 and speed_to_wpm(2.0) == 350 and speed_to_wpm(0.1) == 80
    tts = EspeakTTS()
    slow = await tts.synthesize("One two three four five six.", "en-us", 8000, speed=0.5).collect()
    fast = await tts.synthesize("One two three four five six.", "en-us", 8000, speed=2.0).collect()
    assert len(slow) > 2.5 * len(fast)


async def test_female_voice_and_option_like_text() -> None:
    tts = EspeakTTS()
    out = await tts.synthesize("--help -v xx", "en-us+f3", 16000).collect()
    assert len(out) > 16000 * 0.5  # spoken, not parsed as options
    assert await tts.synthesize("   ", "en-us", 16000).collect() == pytest.approx(np.zeros(0, np.int16))


async def test_unknown_voice_is_not_retryable() -> None:
    tts = EspeakTTS()
    with pytest.raises(ProviderError) as e:
        await tts.synthesize("Hello.", "xx-nosuchvoice", 16000).collect()
    assert e.value.retryable is False and e.value.reason == "bad_voice"
    with pytest.raises(ProviderError):
        await tts.synthesize("Hello.", "-w /tmp/x", 16000).collect()


async def test_aclose_kills_the_process() -> None:
    tts = EspeakTTS()
    stream = tts.synthesize(LONG, "en-us", 16000)
    first = await stream.__anext__()
    assert len(first) > 0 and espeak_children()
    await stream.aclose()
    assert espeak_children() == []


async def test_cancelling_the_consumer_kills_the_process() -> None:
    tts = EspeakTTS()
    got = asyncio.Event()

    async def speak() -> None:
        async with tts.synthesize(LONG, "en-us", 16000) as audio:
            async for _ in audio:
                got.set()
                await asyncio.sleep(10)  # a slow playout consumer

    task = asyncio.create_task(speak())
    await got.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert espeak_children() == []


async def test_concurrent_sentences_and_first_audio_latency() -> None:
    tts = EspeakTTS(max_concurrent=4)
    streams = [tts.synthesize(f"Sentence number {i}.", "en-us", 8000) for i in range(8)]
    outs = await asyncio.gather(*(s.collect() for s in streams))
    assert all(len(o) > 4000 for o in outs)
    assert max(s.first_audio_ms or 1e9 for s in streams) < 1000


def test_wav_header_parser() -> None:
    import struct

    hdr = struct.pack("<4sI4s4sIHHIIHH", b"RIFF", 0, b"WAVE", b"fmt ", 16, 1, 1, 22050, 44100, 2, 16)
    assert parse_wav_header(hdr) is None  # needs the data chunk header
    assert parse_wav_header(hdr + b"LIST" + struct.pack("<I", 3) + b"abc\0" + b"data\xff\xff\xff\x7f") == (
        22050, 1, 36 + 12 + 8)
    with pytest.raises(ProviderError):
        parse_wav_header(b"OggS" + b"\0" * 20)


async def test_tts_speech_is_recognised_by_stt(stt: object) -> None:
    from agents.providers.pocketsphinx_stt import PocketsphinxSTT

    assert isinstance(stt, PocketsphinxSTT)
    pcm = await EspeakTTS().synthesize("Do you have parking?", "en-us", 16000).collect()
    pad = np.zeros(6400, np.int16)
    s = stt.stream(phrases=["Do you have parking?", "Where are you located?"])
    s.push_audio(np.concatenate([pad, pcm, pad]))
    s.end_input()
    assert [t.text async for t in s if t.is_final] == ["do you have parking"]


def test_synthesis_under_the_servers_event_loop() -> None:
    """The server runs uvloop, whose subprocess support differs from asyncio's (it rejected the spawn
    arguments once, and every greeting was silent while the unit tests passed)."""
    import uvloop

    async def speak() -> np.ndarray:
        return await EspeakTTS().synthesize("Thanks for calling.", "en-us", 8000).collect()

    out = uvloop.run(speak())
    assert 0.5 < len(out) / 8000 < 3.0 and np.abs(out).max() > 1000
