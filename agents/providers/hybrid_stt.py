"""The local recogniser by default: pocketsphinx's phrase grammar first, Whisper on a miss.

A caller who says one of the agent's expected phrases is recognised by the grammar in ~50 ms of CPU
(`pocketsphinx_stt`, whole-utterance decode). When the grammar finds no whole phrase spanning the speech
(out of grammar), or the agent has no phrases, the utterance goes to ONE Whisper model shared by every
call (`whisper_worker.WhisperService`: a helper process, one CPU thread, a bounded queue) instead of
pocketsphinx's open vocabulary, which mishears most free speech (LAB.md: WER 47–96 % vs 3–26 %).

Whisper only ever sees speech: the utterance (already cut by the VAD) is trimmed to its voiced span, and
nothing shorter than `MIN_SPEECH_S` is sent. Whisper invents text on silence and noise, so its result is
dropped when it says there was no speech and its tokens are unlikely, when it repeats itself
(compression ratio), or when it is one of the phrases it is known to invent ("thank you", "you"...).

Load: `queue_depth` (utterances waiting or decoding in Whisper) and `grammar_only` (degraded mode: a
miss gives an empty transcript, Whisper is not used) are for the server's load shedding; a full queue
sheds the utterance at once (empty transcript, counted in `stats["shed"]`) rather than delay it.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

from .base import ProviderError
from .pocketsphinx_stt import PocketsphinxSTT, SphinxStream
from .sphinx_pool import DecoderPool, PhraseGrammar, speech_span
from .whisper_worker import WhisperOverloaded, WhisperResult, WhisperService

log = logging.getLogger(__name__)

MIN_SPEECH_S = 0.25
_MARGIN_FRAMES = 25  # 250 ms of context around the voiced span
# what Whisper says on silence, breath and line noise (its training data's subtitles)
_INVENTED = frozenset({"", "you", "thank you", "thanks", "thank you very much", "thanks for watching",
                       "thank you for watching", "bye", "okay", "oh", "so", "uh", "um", "hmm", "subtitles by"})
_WORDS = re.compile(r"[a-z0-9']+")


def plausible(result: WhisperResult, speech_s: float) -> bool:
    """Whisper's output is kept only if it looks like what was said, not what it invents on noise."""
    words = _WORDS.findall(result.text.lower())
    if " ".join(words) in _INVENTED:
        return False
    if result.no_speech_prob > 0.6 and result.avg_logprob < -0.7:
        return False
    if result.compression_ratio > 2.4 or result.avg_logprob < -1.2:
        return False
    return len(words) <= 6 * max(speech_s, 0.5) + 2  # more words than anyone can say in that time


class HybridSTT(PocketsphinxSTT):
    """Grammar fast path + shared Whisper on a miss. Always decodes whole utterances (no interim results)."""

    def __init__(self, pool: DecoderPool | None = None, whisper: WhisperService | None = None, *,
                 noise_floor: float = 16.0) -> None:
        super().__init__(pool, noise_floor=noise_floor, interim_results=False)
        self._owns_whisper = whisper is None  # a service passed in is shared: its owner closes it
        self.whisper = whisper or WhisperService()
        self.stats: Counter[str] = Counter()

    @property
    def queue_depth(self) -> int:
        return self.whisper.depth

    def stream(self, *, phrases: Sequence[str] | None = None, strict: bool = False) -> HybridStream:
        return HybridStream(self, list(phrases or ()), strict)

    async def warm(self) -> None:
        """Start-up: the decoders, then the Whisper helper (loads and warms the model)."""
        await self.pool.warm()
        await self.whisper.start()

    async def aclose(self) -> None:
        await super().aclose()
        if self._owns_whisper:
            await self.whisper.aclose()


class HybridStream(SphinxStream):
    def __init__(self, stt: HybridSTT, phrases: list[str], strict: bool) -> None:
        self._hybrid = stt
        self._open = self._open_default = not strict  # strict: expected phrases only, never Whisper
        super().__init__(stt, phrases, True)  # pocketsphinx never runs its open-vocabulary pass here

    def set_strict(self, on: bool) -> None:
        """Degraded (agents.stt_load): the phrase grammar only, no Whisper, from the next utterance on."""
        super().set_strict(on)
        self._open = self._open_default and not on

    async def _decode_utterance(self, grammar: PhraseGrammar | None, audio: np.ndarray) -> tuple[str, int, int]:
        if grammar is None:
            return "", 0, 0  # nothing expected: straight to Whisper
        return await super()._decode_utterance(grammar, audio)

    async def _second_opinion(self, grammar: PhraseGrammar | None, audio: np.ndarray, text: str, first: int,
                              last: int) -> tuple[str, int, int]:
        stt = self._hybrid
        if text:
            stt.stats["grammar"] += 1
            return text, first, last
        if not self._open or stt.grammar_only:
            stt.stats["grammar_only_miss"] += 1
            return "", 0, 0
        s0, s1 = speech_span(audio)
        if (s1 - s0) * 0.01 < MIN_SPEECH_S:
            stt.stats["no_speech"] += 1
            return "", 0, 0
        lo, hi = max(0, s0 - _MARGIN_FRAMES), min(len(audio) // 160, s1 + _MARGIN_FRAMES)
        try:
            result = await stt.whisper.transcribe(audio[lo * 160 : hi * 160])
        except WhisperOverloaded:
            stt.stats["shed"] += 1
            log.warning("Whisper queue full (%d): an utterance was shed", stt.whisper.depth)
            return "", 0, 0
        except ProviderError as exc:  # the helper failed or cannot start: the call goes on, on the grammar
            stt.stats["whisper_failed"] += 1
            log.warning("Whisper failed (%s): the utterance is lost, the grammar still listens", exc)
            return "", 0, 0
        if not plausible(result, (s1 - s0) * 0.01):
            stt.stats["rejected"] += 1
            log.info("Whisper result dropped as implausible: %r (no_speech %.2f, logprob %.2f)", result.text,
                     result.no_speech_prob, result.avg_logprob)
            return "", 0, 0
        stt.stats["whisper"] += 1
        return result.text, s0, s1
