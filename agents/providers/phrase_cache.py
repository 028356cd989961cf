"""The audio of fixed phrases, synthesised once per worker: greetings, apologies, configured prompts.

Every call of an agent opens with the same greeting, and a worker answering ten calls a second would
otherwise synthesise it ten times a second: a local voice spawns a synthesiser per sentence (bench-sip's
ramp: a fifth of a core, just as new calls arrive and the media tick needs the CPU most) and a cloud voice
takes 100-300 ms before the caller hears the first word (and bills every character). Only phrases the
agent's configuration fixes come here; generated replies are rarely said twice and go to the provider.

A phrase is stored once its synthesis ran to the end (never a cut-short or failed one), keyed by who may
hear it (the organization), the synthesiser's identity (`TextToSpeech.cache_key`: provider, endpoint,
model, settings; None = never cached), the voice, rate, speed and the text. Least recently used phrases
go first past ``max_bytes``. Two calls missing the same phrase at once both synthesise it (the first to
finish stores it): no waiting on another call's synthesis.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator, Hashable

import numpy as np

from .base import SynthesisStream, TextToSpeech

MAX_BYTES = 16 * 1024 * 1024  # ~17 minutes of 8 kHz speech
MAX_CHARS = 400  # longer texts are not phrases


class PhraseCache:
    def __init__(self, max_bytes: int = MAX_BYTES, max_chars: int = MAX_CHARS) -> None:
        self.max_bytes, self.max_chars = max_bytes, max_chars
        self._audio: OrderedDict[Hashable, tuple[np.ndarray, ...]] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._audio)

    def synthesize(self, tts: TextToSpeech, text: str, voice: str, sample_rate: int, *,
                   speed: float | None = None, scope: Hashable = None) -> SynthesisStream:
        """As `tts.synthesize`, from the cache when the phrase is there (its chunks at once)."""
        ident = tts.cache_key()
        if ident is None or len(text) > self.max_chars:
            return tts.synthesize(text, voice, sample_rate, speed=speed)
        key = (scope, ident, voice, sample_rate, speed, text)
        chunks = self._audio.get(key)
        if chunks is not None:
            self._audio.move_to_end(key)
            self.hits += 1
            return SynthesisStream(_replay(chunks), sample_rate)
        self.misses += 1
        return SynthesisStream(self._record(key, tts.synthesize(text, voice, sample_rate, speed=speed)), sample_rate)

    async def _record(self, key: Hashable, stream: SynthesisStream) -> AsyncIterator[np.ndarray]:
        chunks: list[np.ndarray] = []
        async with stream:
            async for chunk in stream:
                chunks.append(chunk.copy())  # the consumer may keep or change what it was given
                yield chunk
        self._store(key, tuple(chunks))  # only reached when the synthesis ran to its end

    def _store(self, key: Hashable, chunks: tuple[np.ndarray, ...]) -> None:
        size = sum(c.nbytes for c in chunks)
        if not size or size > self.max_bytes:
            return
        old = self._audio.pop(key, None)
        if old is not None:
            self.bytes -= sum(c.nbytes for c in old)
        self._audio[key] = chunks
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, dropped = self._audio.popitem(last=False)
            self.bytes -= sum(c.nbytes for c in dropped)


async def _replay(chunks: tuple[np.ndarray, ...]) -> AsyncIterator[np.ndarray]:
    for chunk in chunks:
        yield chunk.copy()
