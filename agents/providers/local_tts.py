"""The process-wide local synthesiser: flite voices and espeak-ng voices behind one `TextToSpeech`.

A local voice's `engine_voice` says which engine speaks it: `flite:<name>` (agents.voices, provider
"flite") goes to `FliteTTS`, anything else is an espeak-ng `-v` argument. When flite cannot be started
(not installed, executable missing) the sentence is spoken by espeak-ng instead — a male flite voice with
`en-us`, a female one with `en-us+f3` — and a WARNING says so (once; later sentences go straight to
espeak-ng). A missing binary never fails a call.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Hashable

import numpy as np

from .base import ProviderError, SynthesisStream, TextToSpeech
from .espeak_tts import EspeakTTS
from .flite_tts import FliteTTS

log = logging.getLogger(__name__)

FLITE_PREFIX = "flite:"
FEMALE_FLITE = frozenset({"slt"})
ESPEAK_MALE, ESPEAK_FEMALE = "en-us", "en-us+f3"


def espeak_stand_in(flite_voice: str) -> str:
    """The espeak-ng voice that speaks for a flite voice when flite is missing."""
    return ESPEAK_FEMALE if flite_voice in FEMALE_FLITE else ESPEAK_MALE


class LocalTTS(TextToSpeech):
    def __init__(self, *, espeak: EspeakTTS | None = None, flite: FliteTTS | None = None) -> None:
        self.espeak = espeak or EspeakTTS()
        self.flite = flite or FliteTTS()
        self.flite_missing = False  # set (and logged) the first time flite cannot be started

    def cache_key(self) -> Hashable:
        return ("local", self.flite_missing)  # once flite is found missing, its voices sound like espeak-ng

    def synthesize(self, text: str, voice: str, sample_rate: int, *, speed: float | None = None) -> SynthesisStream:
        if not voice.startswith(FLITE_PREFIX):
            return self.espeak.synthesize(text, voice, sample_rate, speed=speed)
        name = voice[len(FLITE_PREFIX):]
        return SynthesisStream(self._flite(text, name, sample_rate, speed), sample_rate)

    async def _flite(self, text: str, name: str, sample_rate: int, speed: float | None) -> AsyncIterator[np.ndarray]:
        if not self.flite_missing:
            stream = self.flite.synthesize(text, name, sample_rate, speed=speed)
            try:
                async for chunk in stream:
                    yield chunk
                return
            except ProviderError as e:
                if e.reason != "not_installed":
                    raise
                self.flite_missing = True
                log.warning("flite cannot be started (%s): local flite voices speak with espeak-ng instead "
                            "(install the Debian package flite: scripts/install-system-deps.sh)", e.message)
            finally:
                await stream.aclose()
        async with self.espeak.synthesize(text, espeak_stand_in(name), sample_rate, speed=speed) as audio:
            async for chunk in audio:
                yield chunk

    async def aclose(self) -> None:
        await self.flite.aclose()
        await self.espeak.aclose()
