"""Shared helpers for the provider tests: tones, their frequency, and a transcript collector."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import numpy as np

from agents.providers.base import ProviderError, Transcript


def tone(freq: float, seconds: float, rate: int = 16000, amp: int = 8000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def dominant_freq(pcm: np.ndarray, rate: int) -> float:
    x = pcm.astype(np.float64)
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[int(np.argmax(spec))])


class Collector:
    """Reads a SpeechStream in the background: `finals`, `interims`, and the `error` that ended it."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.finals: list[Transcript] = []
        self.interims: list[Transcript] = []
        self.error: ProviderError | None = None
        self.ended = asyncio.Event()
        self._changed = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        try:
            async for t in self.stream:
                (self.finals if t.is_final else self.interims).append(t)
                self._changed.set()
        except ProviderError as e:
            self.error = e
        finally:
            self.ended.set()
            self._changed.set()

    async def final(self, n: int, within: float = 5.0) -> Transcript:
        """The n-th final (1-based), waiting for it; fails on an error or the stream's end."""
        async with asyncio.timeout(within):
            while len(self.finals) < n:
                if self.ended.is_set():
                    raise AssertionError(f"stream ended after {len(self.finals)} finals: {self.error!r}")
                self._changed.clear()
                await self._changed.wait()
        return self.finals[n - 1]

    async def failure(self, within: float = 5.0) -> ProviderError:
        async with asyncio.timeout(within):
            await self.ended.wait()
        assert self.error is not None, f"stream ended without an error; finals {self.finals}"
        return self.error

    async def close(self) -> None:
        await self.stream.aclose()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
