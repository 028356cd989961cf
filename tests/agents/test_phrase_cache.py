"""Fixed phrases synthesised once by the real local voice (espeak-ng) and replayed from the phrase cache."""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np
import pytest

from agents.providers.base import SynthesisStream
from agents.providers.local_tts import LocalTTS
from agents.providers.phrase_cache import PhraseCache

GREETING = "Thanks for calling Acme, how can I help?"


class CountingTTS(LocalTTS):
    """The real local voice, counting the syntheses it was asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[str] = []

    def synthesize(self, text: str, voice: str, sample_rate: int, *, speed: float | None = None) -> SynthesisStream:
        self.asked.append(text)
        return super().synthesize(text, voice, sample_rate, speed=speed)


class UncachedTTS(CountingTTS):
    def cache_key(self) -> Hashable | None:
        return None


async def play(stream: SynthesisStream) -> np.ndarray:
    async with stream as audio:
        return np.concatenate([c async for c in audio])


async def test_a_phrase_is_synthesised_once_and_replayed_whole() -> None:
    tts, cache = CountingTTS(), PhraseCache()
    first = await play(cache.synthesize(tts, GREETING, "en-us", 8000, scope="org-a"))
    again = await play(cache.synthesize(tts, GREETING, "en-us", 8000, scope="org-a"))
    assert tts.asked == [GREETING]  # the second call of the agent did not start espeak-ng
    assert (cache.misses, cache.hits, len(cache)) == (1, 1, 1)
    assert len(first) > 8000 and np.array_equal(first, again)
    assert cache.bytes == first.nbytes


async def test_what_changes_the_audio_or_who_hears_it_is_another_phrase() -> None:
    tts, cache = CountingTTS(), PhraseCache()
    await play(cache.synthesize(tts, GREETING, "en-us", 8000, scope="org-a"))
    await play(cache.synthesize(tts, GREETING, "en-us", 8000, scope="org-b"))  # another organization
    await play(cache.synthesize(tts, GREETING, "en-us+f3", 8000, scope="org-a"))  # another voice
    await play(cache.synthesize(tts, GREETING, "en-us", 16000, scope="org-a"))  # another rate
    await play(cache.synthesize(tts, GREETING, "en-us", 8000, speed=1.5, scope="org-a"))  # another speed
    assert len(tts.asked) == 5 and cache.hits == 0 and len(cache) == 5


async def test_a_synthesis_cut_short_is_not_kept() -> None:
    tts, cache = CountingTTS(), PhraseCache()
    async with cache.synthesize(tts, GREETING, "en-us", 8000) as audio:
        async for _ in audio:
            break  # barge-in after the first chunk
    assert len(cache) == 0 and cache.bytes == 0
    whole = await play(cache.synthesize(tts, GREETING, "en-us", 8000))
    assert len(tts.asked) == 2 and len(cache) == 1 and len(whole) > 8000


async def test_least_recently_used_phrases_go_first_past_the_budget() -> None:
    tts = CountingTTS()
    size = {t: (await play(PhraseCache().synthesize(tts, t, "en-us", 8000))).nbytes
            for t in ("One moment please.", "Goodbye.", "Thank you.")}
    cache = PhraseCache(max_bytes=size["One moment please."] + max(size["Goodbye."], size["Thank you."]))
    for text in ("One moment please.", "Goodbye.", "One moment please.", "Thank you."):
        await play(cache.synthesize(tts, text, "en-us", 8000))
    assert cache.bytes <= cache.max_bytes and len(cache) == 2
    tts.asked.clear()
    await play(cache.synthesize(tts, "One moment please.", "en-us", 8000))  # used last but one: kept
    assert tts.asked == []
    await play(cache.synthesize(tts, "Goodbye.", "en-us", 8000))  # the least recently used: gone
    assert tts.asked == ["Goodbye."]


@pytest.mark.parametrize("text", [GREETING, "x" * 401])
async def test_uncacheable_synthesisers_and_long_texts_always_synthesise(text: str) -> None:
    cache = PhraseCache()
    tts = UncachedTTS() if text == GREETING else CountingTTS()
    for _ in range(2):
        await play(cache.synthesize(tts, text, "en-us", 8000))
    assert len(tts.asked) == 2 and len(cache) == 0
