"""pocketsphinx decoders and phrase grammars, shared by every recognition stream.

Decoders cost 0.4–0.7 s and ~90 MiB each to create (LAB.md), so `DecoderPool` creates them lazily on its
own threads up to a bound, reuses them, and lends one to a stream for the length of one utterance. Each
decoder runs in its own child process (sphinx_worker.RemoteDecoder): pocketsphinx holds the GIL for a
whole decode and would otherwise stall the event loop and the media tick.
Expected phrases become a JSGF grammar (`build_grammar`), added to a decoder once (~0.4 ms) and kept
in a small LRU of searches per decoder.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .base import ProviderError

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
_MAX_GRAMMARS = 32  # phrase-set searches kept per decoder (LRU)
_WORD = re.compile(r"[a-z][a-z']*")



@dataclass(frozen=True, slots=True)
class PhraseGrammar:
    """The phrases a stream expects, normalised; `unknown` were dropped (words not in the dictionary)."""

    name: str
    phrases: tuple[str, ...]
    unknown: tuple[str, ...]
    jsgf: str


def normalise(text: str) -> str:
    return " ".join(_WORD.findall(text.lower().replace("’", "'")))


def build_grammar(phrases: Sequence[str], known: Any) -> PhraseGrammar | None:
    """JSGF alternatives of the phrases whose words `known(word)` accepts; None if none survive."""
    keep: list[str] = []
    unknown: list[str] = []
    for p in phrases:
        n = normalise(p)
        if not n:
            continue
        if all(known(w) for w in n.split()):
            if n not in keep:
                keep.append(n)
        else:
            unknown.append(p)
    if not keep:
        return None
    name = "g" + hashlib.sha1("\n".join(keep).encode()).hexdigest()[:16]
    body = " | ".join(keep)
    return PhraseGrammar(name, tuple(keep), tuple(unknown),
                         f"#JSGF V1.0;\ngrammar {name};\npublic <phrase> = {body} ;\n")


class PooledDecoder:
    def __init__(self, decoder: Any) -> None:
        self.decoder = decoder
        self.grammars: OrderedDict[str, None] = OrderedDict()

    def use_grammar(self, grammar: PhraseGrammar | None) -> None:
        """(executor) activate the grammar's search, adding it on first use; None → open vocabulary."""
        d = self.decoder
        if grammar is None:
            d.activate_search()
            return
        if grammar.name not in self.grammars:
            d.add_jsgf_string(grammar.name, grammar.jsgf)
            self.grammars[grammar.name] = None
            if len(self.grammars) > _MAX_GRAMMARS:
                old, _ = self.grammars.popitem(last=False)
                d.remove_search(old)
        self.grammars.move_to_end(grammar.name)
        d.activate_search(grammar.name)


class DecoderPool:
    """At most `size` decoders, created on demand in an executor and reused; `acquire()` waits for one."""

    def __init__(self, size: int = 2, *, executor: concurrent.futures.Executor | None = None,
                 isolated: bool = True, **config: Any) -> None:
        self.size = size
        self.isolated = isolated  # decoders in child processes (the server); False: in-process
        # own threads by default: decoding never waits behind (or starves) other executor work
        self._own_executor = executor is None
        self.executor = executor or concurrent.futures.ThreadPoolExecutor(size, thread_name_prefix="stt")
        self.config = {"samprate": SAMPLE_RATE, "loglevel": "FATAL", **config}
        self._idle: list[PooledDecoder] = []
        self._slots: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.created = 0
        self.creation_seconds: list[float] = []
        self._dict_cache: dict[str, bool] = {}

    def _create(self) -> PooledDecoder:
        t = time.perf_counter()
        if self.isolated:
            from .sphinx_worker import RemoteDecoder

            d = PooledDecoder(RemoteDecoder(self.config))
        else:
            import pocketsphinx

            d = PooledDecoder(pocketsphinx.Decoder(**self.config))
        self.creation_seconds.append(time.perf_counter() - t)
        return d

    def _semaphore(self) -> asyncio.Semaphore:
        # decoders are plain objects and outlive event loops (tests, restarts); the limit is per loop
        loop = asyncio.get_running_loop()
        if self._slots is None or self._loop is not loop:
            self._slots, self._loop = asyncio.Semaphore(self.size), loop
        return self._slots

    async def acquire(self) -> PooledDecoder:
        await self._semaphore().acquire()
        if self._idle:
            return self._idle.pop()
        try:
            d = await self.run(self._create)
        except Exception as e:
            self._semaphore().release()
            raise ProviderError(f"cannot create a pocketsphinx decoder: {e}", retryable=False,
                                reason="model_load_failed", provider="pocketsphinx") from e
        self.created += 1
        return d

    def release(self, d: PooledDecoder, *, broken: bool = False) -> None:
        if not broken:
            self._idle.append(d)
        else:  # closing joins the decoder's process (up to 2 s): never on the event loop
            threading.Thread(target=_close, args=(d,), name="sphinx-close", daemon=True).start()
        if self._slots is not None:
            self._slots.release()

    def close(self) -> None:
        """Drop idle decoders (ending their processes) and stop the pool's own threads."""
        for d in self._idle:
            _close(d)
        self._idle.clear()
        if self._own_executor:
            self.executor.shutdown(wait=False, cancel_futures=True)

    async def run(self, fn: Any, *args: Any) -> Any:
        """Run `fn(*args)` on the pool's executor."""
        return await asyncio.wrap_future(self.executor.submit(fn, *args))

    async def warm(self, n: int | None = None) -> None:
        """Create decoders ahead of the first call (start-up)."""
        ds = [await self.acquire() for _ in range(min(n or self.size, self.size))]
        for d in ds:
            self.release(d)

    async def grammar(self, phrases: Sequence[str]) -> PhraseGrammar | None:
        """Build a phrase grammar, checking words against the model's dictionary (cached)."""
        words = {w for p in phrases for w in normalise(p).split()} - self._dict_cache.keys()
        if words:
            d = await self.acquire()
            try:
                found = await self.run(lambda: {w: d.decoder.lookup_word(w) is not None for w in words})
            finally:
                self.release(d)
            self._dict_cache.update(found)
        g = build_grammar(phrases, self._dict_cache.__getitem__)
        if g and g.unknown:
            log.warning("STT phrases with words outside the dictionary were dropped: %s", g.unknown)
        return g


def _close(d: PooledDecoder) -> None:
    close = getattr(d.decoder, "close", None)
    if close is not None:
        try:
            close()
        except Exception:
            log.exception("closing a pocketsphinx decoder failed")


MIN_COVERAGE = 0.6


def speech_span(audio: np.ndarray) -> tuple[int, int]:
    """(first, last+1) 10 ms frame whose energy stands out of the noise floor (within 35 dB of the peak)."""
    n = len(audio) // 160
    if n == 0:
        return 0, 0
    f = audio[: n * 160].reshape(n, 160).astype(np.float64)
    e = 10 * np.log10((f * f).mean(axis=1) + 1.0)
    idx = np.nonzero(e > max(e.max() - 35.0, np.percentile(e, 10) + 10.0))[0]
    return (int(idx[0]), int(idx[-1]) + 1) if len(idx) else (0, 0)


def accept_grammar_result(text: str, first: int, last: int, grammar: PhraseGrammar, audio: np.ndarray) -> bool:
    """A grammar result counts only if it is a whole expected phrase spanning most of what was said (the
    search otherwise returns the best partial path, e.g. "no" for an unrelated sentence)."""
    if text not in grammar.phrases:
        return False
    s0, s1 = speech_span(audio)
    return s1 <= s0 or (last - first) >= MIN_COVERAGE * (s1 - s0)
