"""The local recogniser's work, bounded: how many utterances wait for a decode, how long they wait, and
what is shed or degraded when the box cannot keep up.

Local speech-to-text (pocketsphinx in helper processes) is shared by every call of the worker. Its queue
must never grow without limit: a caller waiting 20 s for a transcript is as lost as one whose utterance
was dropped, and the CPU spent on a backlog is taken from the media tick. So every conversation that
uses the shared recogniser asks this object before it hands an utterance over (`begin`):

- at most ``max_pending`` utterances are in flight (handed over, final transcript not yet out); an
  utterance beyond that is SHED (never decoded; the caller hears nothing for it and may repeat);
- when the recent latency (flush → final) exceeds ``degrade_ms`` or the queue is more than half full, the
  recogniser is DEGRADED: streams are asked to decode with their phrase grammar only (no open-vocabulary
  second pass, ~10× cheaper) until the latency falls under ``degrade_ms`` / 2 again;
- the stated worst case: an admitted utterance waits behind at most ``max_pending - 1`` others.

`overloaded` (a shed in the last ``window_s`` seconds, or degraded) feeds the worker's overload flag
(switchboard.calls.overload): `/health` degraded, new inbound calls refused. The counters are for metrics.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

ATTRIBUTE = "stt_load"  # a shared local SpeechToText carries its SttLoad under this attribute


@dataclass
class SttLoadStats:
    admitted: int = 0
    shed: int = 0
    completed: int = 0
    degraded_utterances: int = 0  # admitted while degraded (grammar only)
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=4096))


class SttLoad:
    def __init__(self, *, max_pending: int = 8, degrade_ms: float = 1500.0, window_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_pending, self.degrade_ms, self.window_s = max_pending, degrade_ms, window_s
        self.clock = clock
        self.pending = 0
        self.stats = SttLoadStats()
        self._recent: deque[tuple[float, float]] = deque(maxlen=64)  # (finished at, latency ms)
        self._last_shed = -1e9
        self._degraded = False
        self._in_flight: list[float] = []  # start times of the admitted utterances without a final yet

    # -- per utterance ---------------------------------------------------------------------------------
    def begin(self) -> float | None:
        """Admit one utterance: its start time (give it back to `end`), or None when it is shed."""
        now = self.clock()
        if self.pending >= self.max_pending:
            self.stats.shed += 1
            self._last_shed = now
            return None
        self.pending += 1
        self._in_flight.append(now)
        self.stats.admitted += 1
        if self.degraded:
            self.stats.degraded_utterances += 1
        return now

    def end(self, started: float, *, completed: bool = True) -> float:
        """The utterance's final transcript is out (or it was abandoned); returns its latency in ms."""
        now = self.clock()
        self.pending = max(0, self.pending - 1)
        if started in self._in_flight:
            self._in_flight.remove(started)
        latency = (now - started) * 1000.0
        if completed:
            self.stats.completed += 1
            self.stats.latencies_ms.append(latency)
            self._recent.append((now, latency))
        return latency

    # -- state -----------------------------------------------------------------------------------------
    def recent_latency_ms(self) -> float:
        """Median latency of the utterances finished in the last window, or the age of the oldest one still
        waiting if that is longer (decodes slower than the window still count); 0 when idle."""
        now = self.clock()
        vals = [lat for at, lat in self._recent if now - at <= self.window_s]
        waiting = (now - min(self._in_flight)) * 1000.0 if self._in_flight else 0.0
        return max(float(np.median(vals)) if vals else 0.0, waiting)

    @property
    def degraded(self) -> bool:
        """Grammar-only decoding: latency over ``degrade_ms`` or the queue half full (hysteresis: back to
        full decoding under half of it)."""
        lat = self.recent_latency_ms()
        if self._degraded:
            self._degraded = lat > self.degrade_ms / 2 or self.pending > self.max_pending // 2
        else:
            self._degraded = lat > self.degrade_ms or self.pending > self.max_pending // 2
        return self._degraded

    @property
    def overloaded(self) -> bool:
        return self.degraded or self.clock() - self._last_shed <= self.window_s

    def snapshot(self) -> dict[str, Any]:
        lat = list(self.stats.latencies_ms)
        return {"pending": self.pending, "max_pending": self.max_pending, "admitted": self.stats.admitted,
                "shed": self.stats.shed, "completed": self.stats.completed,
                "degraded_utterances": self.stats.degraded_utterances, "degraded": self.degraded,
                "latency_p50_ms": round(float(np.percentile(lat, 50)), 1) if lat else None,
                "latency_p90_ms": round(float(np.percentile(lat, 90)), 1) if lat else None}


def load_of(stt: Any) -> SttLoad | None:
    """The SttLoad a (shared, local) recogniser carries, if any."""
    load = getattr(stt, ATTRIBUTE, None)
    return load if isinstance(load, SttLoad) else None
