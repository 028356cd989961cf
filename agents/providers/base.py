"""The provider interfaces: speech-to-text, text-to-speech and language models.

Every provider is a small streaming object in the livekit/pipecat shape: input is pushed in (never blocks),
results come out of `async for event in stream`, and `aclose()` ends it early. Failures are raised as
`ProviderError`, which carries its own verdict (`retryable`) and a short machine `reason`, decided by the
code that detected the failure.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


class ProviderError(Exception):
    """A provider failed. `retryable`: trying again (same input) may succeed; `reason`: short code to record."""

    def __init__(self, message: str, *, retryable: bool, reason: str = "error", provider: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.reason = reason
        self.provider = provider

    def __repr__(self) -> str:
        return f"ProviderError({self.message!r}, retryable={self.retryable}, reason={self.reason!r})"


# ---------------------------------------------------------------- speech to text


@dataclass(frozen=True, slots=True)
class Transcript:
    """A recognised utterance. Offsets are in ms of the audio pushed into the stream; `latency_ms` is the
    time from the end of input of this utterance (`flush`/`end_input`) to this final result (0 for
    interim results)."""

    text: str
    is_final: bool
    start_ms: int
    end_ms: int
    latency_ms: float = 0.0
    confidence: float | None = None


class SpeechStream(abc.ABC):
    """One recognition stream: `push_audio()` 16 kHz int16 mono, `flush()` ends an utterance (a final
    `Transcript` follows), `end_input()` ends the stream (flushes first); iterate for events."""

    @abc.abstractmethod
    def push_audio(self, pcm16k: np.ndarray) -> None: ...

    @abc.abstractmethod
    def flush(self) -> None: ...

    @abc.abstractmethod
    def end_input(self) -> None: ...

    @abc.abstractmethod
    async def aclose(self) -> None: ...

    @abc.abstractmethod
    def __aiter__(self) -> AsyncIterator[Transcript]: ...


FLUSH, END = "flush", "end"  # input operations queued beside audio blocks


class QueuedSpeechStream(SpeechStream):
    """What every recognition stream shares: input queued as operations (audio blocks, FLUSH, END) for
    the stream's one task, `_main`, which subclasses write; results handed out through a queue in which
    None ends the stream and an exception is raised to the consumer. Call `_start(name)` last in
    `__init__`."""

    def __init__(self) -> None:
        self._ops: deque[np.ndarray | str] = deque()
        self._wake = asyncio.Event()
        self._events: asyncio.Queue[Transcript | BaseException | None] = asyncio.Queue()
        self._input_ended = False
        self._task: asyncio.Task[None] | None = None

    def _start(self, name: str) -> None:
        self._task = asyncio.get_running_loop().create_task(self._main(), name=name)

    @abc.abstractmethod
    async def _main(self) -> None: ...

    async def _next_op(self) -> np.ndarray | str:
        """The next queued input operation (an audio block, FLUSH or END), waiting for one."""
        while not self._ops:
            self._wake.clear()
            await self._wake.wait()
        return self._ops.popleft()

    # ---- input (never blocks)
    def push_audio(self, pcm16k: np.ndarray) -> None:
        if self._input_ended:
            raise RuntimeError("push_audio after end_input")
        if pcm16k.dtype != np.int16:
            raise TypeError("push 16 kHz int16 audio")
        self._ops.append(pcm16k.copy())
        self._wake.set()

    def flush(self) -> None:
        self._ops.append(FLUSH)
        self._wake.set()

    def end_input(self) -> None:
        if not self._input_ended:
            self._input_ended = True
            self._ops.extend((FLUSH, END))
            self._wake.set()

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # ---- output
    def __aiter__(self) -> AsyncIterator[Transcript]:
        return self._iter()

    async def _iter(self) -> AsyncIterator[Transcript]:
        while True:
            ev = await self._events.get()
            if ev is None:
                return
            if isinstance(ev, BaseException):
                raise ev
            yield ev


class SpeechToText(abc.ABC):
    sample_rate: int = 16000

    @abc.abstractmethod
    def stream(self, *, phrases: Sequence[str] | None = None) -> SpeechStream:
        """Open a stream (per call or per turn). `phrases`: expected utterances that bias or restrict
        recognition (providers that cannot use them ignore them)."""

    async def warm(self) -> None:  # noqa: B027 - optional hook
        """Before the first call: load models, start helper processes (local recognisers)."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release shared resources (decoder pools, connections)."""


# ---------------------------------------------------------------- text to speech


class SynthesisStream:
    """The audio of one synthesis, as int16 chunks at the requested rate. Measures time to first audio
    (`first_audio_ms`, from creation). `aclose()` stops the synthesis: consume it as
    `async with tts.synthesize(...) as audio: async for chunk in audio: ...` so that a cancelled or
    interrupted consumer (barge-in) stops it at once (a bare `async for` leaves that to the GC)."""

    def __init__(self, chunks: AsyncIterator[np.ndarray], sample_rate: int) -> None:
        self._chunks = chunks
        self.sample_rate = sample_rate
        self.started = time.perf_counter()
        self.first_audio_ms: float | None = None
        self.samples = 0

    def __aiter__(self) -> SynthesisStream:
        return self

    async def __aenter__(self) -> SynthesisStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def __anext__(self) -> np.ndarray:
        chunk = await self._chunks.__anext__()
        if self.first_audio_ms is None:
            self.first_audio_ms = (time.perf_counter() - self.started) * 1000.0
        self.samples += len(chunk)
        return chunk

    async def aclose(self) -> None:
        aclose = getattr(self._chunks, "aclose", None)
        if aclose is not None:
            await aclose()

    async def collect(self) -> np.ndarray:
        """Everything at once (tests, short prompts)."""
        parts = [c async for c in self]
        return np.concatenate(parts) if parts else np.zeros(0, np.int16)


class TextToSpeech(abc.ABC):
    @abc.abstractmethod
    def synthesize(self, text: str, voice: str, sample_rate: int, *, speed: float | None = None) -> SynthesisStream:
        """Synthesise one sentence. `voice` is the provider's own voice name (`Voice.engine_voice`)."""

    def cache_key(self) -> Hashable | None:
        """What, beside the voice, rate, speed and text, makes this synthesiser's audio what it is (provider,
        endpoint, model, settings), for `phrase_cache.PhraseCache`; None: its audio is never reused."""
        return None

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release shared resources."""


# ---------------------------------------------------------------- language models


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A complete function call asked for by the model. `arguments` is the raw JSON text the model wrote;
    `args()` parses it (invalid JSON → {} and `arguments_error`)."""

    id: str
    name: str
    arguments: str

    def args(self) -> dict[str, Any]:
        try:
            value = json.loads(self.arguments or "{}")
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    @property
    def arguments_error(self) -> bool:
        try:
            return not isinstance(json.loads(self.arguments or "{}"), dict)
        except ValueError:
            return True


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


LLMEvent = TextDelta | ToolCall | Usage


@dataclass(slots=True)
class LLMStats:
    """Filled in while a completion streams."""

    ttft_ms: float | None = None  # request sent → first content or tool-call token
    duration_ms: float | None = None
    finish_reason: str | None = None
    usage: Usage | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class LLMStream(abc.ABC):
    stats: LLMStats

    @abc.abstractmethod
    def __aiter__(self) -> AsyncIterator[LLMEvent]: ...

    @abc.abstractmethod
    async def aclose(self) -> None: ...


class LanguageModel(abc.ABC):
    @abc.abstractmethod
    def stream(self, messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]] | None = None) -> LLMStream:
        """Stream one completion of OpenAI-style chat `messages` with OpenAI-style function `tools`."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
