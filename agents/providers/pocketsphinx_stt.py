"""Local speech-to-text with pocketsphinx 5.x (16 kHz en-us model shipped in the wheel).

Decoders cost 0.4–0.7 s and ~90 MiB each to create (LAB.md), so a `DecoderPool` (sphinx_pool.py)
creates them lazily up to a bound and lends one to a stream for the length of ONE utterance: a per-call
stream holds no decoder between turns. All decoding runs in an executor; the event loop only moves buffers.

Open-vocabulary recognition of synthetic or telephone speech is poor, so a stream may be given the
phrases the agent expects (e.g. built from its expected questions). They become a JSGF grammar (one
search per phrase set, added once per pooled decoder, ~0.4 ms). An utterance is decoded against the
grammar while it streams; if the grammar finds no phrase, the buffered utterance is decoded again with
the open language model (unless `strict=True`, which returns an empty transcript instead). A grammar
result is accepted only when it is a whole phrase whose words span most of the utterance's speech. Known
limit: speech acoustically close to an expected phrase can still be snapped onto it ("where is the
hotel" → "where are you located"), the price of grammar recognition.
Exact digital silence hurts the acoustic front end, so a faint deterministic noise floor is added.

Without interim results (the server's setting: a call pushes each utterance whole, once the endpointer
has closed it) an utterance is decoded in one batch at its flush, with cepstral mean normalisation over
that utterance alone: the result does not depend on what the decoder heard before. Streamed decoding
(interim results) normalises live, from the model's default means, adapting over the decoder's utterances.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from .base import FLUSH, ProviderError, QueuedSpeechStream, SpeechToText, Transcript
from .sphinx_pool import SAMPLE_RATE, DecoderPool, PhraseGrammar, PooledDecoder, accept_grammar_result

log = logging.getLogger(__name__)

_FRAME_MS = 10  # pocketsphinx frames are 10 ms
_MAX_UTTERANCE_S = 60  # buffered for the open-vocabulary fallback


class PocketsphinxSTT(SpeechToText):
    def __init__(self, pool: DecoderPool | None = None, *, noise_floor: float = 16.0,
                 interim_results: bool = True) -> None:
        self.pool = pool or DecoderPool()
        self.noise_floor = noise_floor
        self.interim_results = interim_results
        # degraded mode under overload (set by the server's load shedding): expected phrases only, no
        # open-vocabulary pass (a miss gives an empty transcript)
        self.grammar_only = False

    @property
    def queue_depth(self) -> int:
        """Utterances waiting for the expensive second pass (none here: it runs on the stream's decoder)."""
        return 0

    def stream(self, *, phrases: Sequence[str] | None = None, strict: bool = False) -> SphinxStream:
        return SphinxStream(self, list(phrases or ()), strict)

    async def warm(self) -> None:
        """Before the first call: create the pool's decoders (0.4–0.7 s each)."""
        await self.pool.warm()

    async def aclose(self) -> None:
        self.pool.close()




class SphinxStream(QueuedSpeechStream):
    def __init__(self, stt: PocketsphinxSTT, phrases: list[str], strict: bool) -> None:
        super().__init__()
        self._stt, self._pool = stt, stt.pool
        self._phrases, self._strict = phrases, strict
        self._strict_default = strict
        self._samples = 0  # pushed so far: the stream's clock
        self._rng = np.random.default_rng(0)
        self._inflight: concurrent.futures.Future[Any] | None = None
        self._start("stt-pocketsphinx")

    def set_strict(self, on: bool) -> None:
        """Phrase grammar only from the next utterance on (no open-vocabulary pass on a miss): the cheap mode
        the conversation asks for while the shared recogniser is overloaded (agents.stt_load)."""
        self._strict = on or self._strict_default


    # ---- the stream's one task
    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        grammar = None
        dec: PooledDecoder | None = None
        utt: list[np.ndarray] = []
        utt_start = 0
        last_partial = ""
        streaming = self._stt.interim_results
        try:
            if self._phrases:
                grammar = await self._pool.grammar(self._phrases)
            while True:
                op = await self._next_op()
                if isinstance(op, np.ndarray):
                    batch = [op]
                    while self._ops and isinstance(self._ops[0], np.ndarray):
                        batch.append(self._ops.popleft())  # type: ignore[arg-type]
                    pcm = self._condition(np.concatenate(batch))
                    if not utt:
                        utt_start, last_partial = self._samples, ""
                    self._samples += len(pcm)
                    if sum(map(len, utt)) < _MAX_UTTERANCE_S * SAMPLE_RATE:
                        utt.append(pcm)
                    if not streaming:
                        continue  # decoded whole at the flush (per-utterance normalisation)
                    start = dec is None
                    if start:
                        dec = await self._pool.acquire()
                    partial = await self._run(self._feed, dec, grammar, pcm, start)
                    if partial and partial != last_partial:
                        last_partial = partial
                        ms = utt_start * 1000 // SAMPLE_RATE
                        self._events.put_nowait(Transcript(partial, False, ms, self._samples * 1000 // SAMPLE_RATE))
                elif op == FLUSH:
                    if not utt:
                        continue
                    t0 = time.perf_counter()
                    audio = np.concatenate(utt)
                    utt = []
                    if dec is None:  # not streamed: the whole utterance in one batch decode
                        text, first, last = await self._decode_utterance(grammar, audio)
                    else:
                        text, first, last = await self._run(self._finish, dec, grammar, audio)
                        self._pool.release(dec)
                        dec = None
                    text, first, last = await self._second_opinion(grammar, audio, text, first, last)
                    base = utt_start * 1000 // SAMPLE_RATE
                    end = self._samples * 1000 // SAMPLE_RATE
                    self._events.put_nowait(Transcript(
                        text, True, base + first * _FRAME_MS if text else base,
                        min(end, base + last * _FRAME_MS) if text else end,
                        (time.perf_counter() - t0) * 1000.0))
                else:  # END
                    break
        except asyncio.CancelledError:
            raise
        except ProviderError as e:
            self._events.put_nowait(e)
        except Exception as e:
            if dec is not None:
                self._pool.release(dec, broken=True)
                dec = None
            self._events.put_nowait(ProviderError(f"pocketsphinx failed: {e}", retryable=True,
                                                  reason="decode_failed", provider="pocketsphinx"))
        finally:
            if dec is not None:
                self._recycle(loop, dec)
            self._events.put_nowait(None)

    async def _decode_utterance(self, grammar: PhraseGrammar | None, audio: np.ndarray) -> tuple[str, int, int]:
        """One whole utterance on a pooled decoder: (text, first frame, last frame + 1)."""
        dec = await self._pool.acquire()
        try:
            result = await self._run(self._decode_whole, dec, grammar, audio)
        except BaseException:
            self._recycle(asyncio.get_running_loop(), dec)
            raise
        self._pool.release(dec)
        return result

    async def _second_opinion(self, grammar: PhraseGrammar | None, audio: np.ndarray, text: str, first: int,
                              last: int) -> tuple[str, int, int]:
        """Hook for a hybrid recogniser (a grammar miss decoded by another engine); the result as is here."""
        return text, first, last

    async def _run(self, fn: Any, *args: Any) -> Any:
        self._inflight = self._pool.executor.submit(fn, *args)
        return await asyncio.wrap_future(self._inflight)

    def _recycle(self, loop: asyncio.AbstractEventLoop, d: PooledDecoder) -> None:
        """Cancelled mid-utterance: once the decoder's executor call (if any) is over, end its utterance
        on the executor and give it back to the pool."""
        pool = self._pool

        def give_back(ok: bool) -> None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(lambda: pool.release(d, broken=not ok))

        def reset(_: object = None) -> None:
            try:
                pool.executor.submit(_abandon, d).add_done_callback(
                    lambda f: give_back(not f.cancelled() and f.result()))
            except RuntimeError:  # executor shut down
                give_back(False)

        if self._inflight is not None and not self._inflight.done():
            self._inflight.add_done_callback(reset)
        else:
            reset()

    def _condition(self, pcm: np.ndarray) -> np.ndarray:
        if self._stt.noise_floor <= 0:
            return pcm
        noisy = pcm + self._rng.normal(0.0, self._stt.noise_floor, len(pcm))
        return np.clip(noisy, -32768, 32767).astype(np.int16)

    # ---- executor side (one decoder is only ever used by one stream at a time)
    @staticmethod
    def _feed(dec: PooledDecoder, grammar: PhraseGrammar | None, pcm: np.ndarray, start: bool) -> str:
        d = dec.decoder
        if start:
            dec.use_grammar(grammar)
            d.start_utt()
        d.process_raw(pcm.tobytes(), False, False)
        hyp = d.hyp()
        return hyp.hypstr if hyp is not None else ""

    def _decode_whole(self, dec: PooledDecoder, grammar: PhraseGrammar | None,
                      audio: np.ndarray) -> tuple[str, int, int]:
        """The whole utterance at once (`full_utt`): cepstral mean normalisation is computed over this
        utterance alone, so a decode never depends on what the decoder heard before (the first call after
        a start used to be normalised with the model's default means, far from a phone line's, and misheard
        "what does switchboard do" as "what a god we did or two")."""
        d = dec.decoder
        dec.use_grammar(grammar)
        d.start_utt()
        d.process_raw(audio.tobytes(), False, True)
        return self._finish(dec, grammar, audio)

    def _finish(self, dec: PooledDecoder, grammar: PhraseGrammar | None, audio: np.ndarray) -> tuple[str, int, int]:
        d = dec.decoder
        d.end_utt()
        text, first, last = _result(d)
        if grammar is not None and text and not accept_grammar_result(text, first, last, grammar, audio):
            text, first, last = "", 0, 0
        if not text and grammar is not None and not self._strict and not self._stt.grammar_only:
            dec.use_grammar(None)  # open-vocabulary pass over the same utterance
            d.start_utt()
            d.process_raw(audio.tobytes(), False, True)
            d.end_utt()
            text, first, last = _result(d)
        return text, first, last


def _result(d: Any) -> tuple[str, int, int]:
    hyp = d.hyp()
    text = hyp.hypstr.strip() if hyp is not None else ""
    if not text:
        return "", 0, 0
    words = [s for s in d.seg() if s.word[:1] not in "<[(" and s.word]
    if not words:
        return text, 0, 0
    return text, words[0].start_frame, words[-1].end_frame + 1


def _abandon(dec: PooledDecoder) -> bool:
    try:
        dec.decoder.end_utt()
    except Exception:
        return False
    return True
