"""Real time first: is this worker keeping up, and may it take another call?

Two measurements decide:
- the media tick's lateness: how long after its 20 ms slot each step started (frames slip once it is > 20 ms
  late), reported by the tick itself (`observe_tick`); without a tick (tests), a 20 ms timer of its own;
- the shared local recogniser's load (agents.stt_load.SttLoad): utterances shed, or decoding degraded to
  the phrase grammar, in the last few seconds.

`degraded` (for `/health` and metrics): over the last ``window_s`` seconds more than ``late_share`` (1 %)
of the timer's wake-ups came more than a frame (20 ms) late — frames are slipping — or speech-to-text is
overloaded. `admit()` (the inbound path asks before answering a new call) refuses earlier than frames slip:
when more than ``late_share`` of the wake-ups came more than ``refuse_ms`` (15 ms: three quarters of a
frame) late while calls are up, and one of them within the last second or in three different seconds of the
window (a blip that has passed does not refuse calls for the rest of the window, lateness that keeps coming
back does; an idle worker's late wake-ups — start-up, warm-up — protect no audio), or
the worker already has ``max_calls`` calls, or the machine's cores are ``cpu_limit`` (75 %) busy over the last
3 s (`box_cpu.BoxCpu`: every worker on the box sees it before any of them runs late) while this worker has at
least ``cpu_min_calls`` (10) calls up. An overloaded recogniser degrades speech-to-text (phrase grammar
only, then shed turns, all counted) and marks the worker degraded, but does not refuse calls whose audio
the worker can carry: ``SWITCHBOARD_ADMISSION=stt`` refuses then too (accuracy before capacity).
``SWITCHBOARD_ADMISSION=off`` keeps measuring but never refuses (benchmarks on a shared machine).
`snapshot()` gives the counters (lateness percentiles, refusals, STT pending/shed/degraded) for export.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from agents.stt_load import ATTRIBUTE, SttLoad, load_of

from .box_cpu import BoxCpu

log = logging.getLogger(__name__)

PERIOD = 0.020
RECENT_S = 1.0  # a refusal also needs a late step this recently: the lateness is still going on...
RECURRING_SECONDS = 3  # ...or late steps in this many different seconds of the window: it keeps coming back
CPU_LIMIT = 0.75  # the machine's busy share (all cores, idle class not counted) at which no more calls are taken...
CPU_MIN_CALLS = 10  # ...by a worker with at least this many calls up (a few calls do not load a box: tests, CI)
CPU_SAMPLE_S = 1.0


class Overload:
    def __init__(self, stt: Any = None, *, refuse_ms: float = 15.0, degraded_ms: float = 20.0,
                 late_share: float = 0.01, window_s: float = 5.0, max_calls: int | None = None,
                 active_calls: Callable[[], int] | None = None, admission: bool | None = None,
                 refuse_on_stt: bool | None = None, cpu_limit: float | None = None,
                 cpu_min_calls: int = CPU_MIN_CALLS, box_cpu: BoxCpu | None = None) -> None:
        """``stt``: the worker's shared local recogniser; an SttLoad is attached to it (the conversations
        ask it before every decode) unless it carries one already. ``cpu_limit``: the machine's busy share
        (`BoxCpu`) at which a worker with ``cpu_min_calls`` calls up takes no more (default
        ``SWITCHBOARD_ADMIT_CPU``, 0.75; 0 = never)."""
        self.refuse_ms, self.degraded_ms, self.window_s = refuse_ms, degraded_ms, window_s
        self.late_share = late_share
        if admission is None:
            mode = os.environ.get("SWITCHBOARD_ADMISSION", "on").strip().lower()
            admission = mode not in ("off", "0", "no")
            refuse_on_stt = mode == "stt" if refuse_on_stt is None else refuse_on_stt
        self.admission = admission
        self.refuse_on_stt = bool(refuse_on_stt)
        self.max_calls, self.active_calls = max_calls, active_calls
        self.stt_load: SttLoad | None = load_of(stt)
        if self.stt_load is None and stt is not None:
            self.stt_load = SttLoad()
            setattr(stt, ATTRIBUTE, self.stt_load)
        self._lateness: deque[float] = deque(maxlen=max(1, int(window_s / PERIOD)))  # ms
        self._over = {refuse_ms: 0, degraded_ms: 0}  # samples in the window over each threshold (kept per sample)
        self._task: asyncio.Task[None] | None = None
        self.measuring = False
        self.refused = 0
        self.admitted = 0
        self.degraded_since: float | None = None
        self.degraded_seconds = 0.0  # total time spent degraded (metrics)
        self._last_log = -1e9
        if cpu_limit is None:
            raw = os.environ.get("SWITCHBOARD_ADMIT_CPU", "").strip()
            try:
                cpu_limit = float(raw) if raw else CPU_LIMIT
            except ValueError:
                cpu_limit = -1.0  # reported below
        if not 0.0 <= cpu_limit <= 1.0:
            raise ValueError("SWITCHBOARD_ADMIT_CPU must be a share of all cores between 0 and 1 (0 = off), not "
                             f"{os.environ.get('SWITCHBOARD_ADMIT_CPU', cpu_limit)!r}")
        self.cpu_limit, self.cpu_min_calls = cpu_limit, cpu_min_calls
        self.box_cpu = box_cpu or BoxCpu()
        self._cpu_task: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self, *, fed_by_tick: bool = False) -> None:
        """Start measuring. ``fed_by_tick``: the media tick reports how late each of its 20 ms steps started
        (`observe_tick`) — the lateness that makes frames slip — instead of a timer of the overload's own, which
        would also count the tick's own duration as lateness (a timer due during a 10 ms tick wakes 10 ms
        late, yet no frame slips)."""
        self.measuring = True
        if self._task is None and not fed_by_tick:
            self._task = asyncio.get_running_loop().create_task(self._probe(), name="overload-probe")
        if self._cpu_task is None and self.cpu_limit > 0:
            self._cpu_task = asyncio.get_running_loop().create_task(self._sample_cpu(), name="overload-box-cpu")

    def observe_tick(self, lateness_ms: float) -> None:
        """The media tick's lateness for one step (while measuring)."""
        if self.measuring:
            self.record_lateness(lateness_ms)

    async def stop(self) -> None:
        self.measuring = False
        for task in (self._task, self._cpu_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._cpu_task = None

    async def _sample_cpu(self) -> None:
        while True:
            await asyncio.to_thread(self.box_cpu.sample)  # reads /proc: off the loop
            await asyncio.sleep(CPU_SAMPLE_S)

    async def _probe(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + PERIOD
            await asyncio.sleep(PERIOD)
            self.record_lateness(max(0.0, loop.time() - due) * 1000.0)

    def record_lateness(self, ms: float) -> None:
        """One lateness sample (the probe's; tests feed their own)."""
        lat, over = self._lateness, self._over
        if len(lat) == lat.maxlen:  # the oldest sample leaves the window
            oldest = lat[0]
            for limit in over:
                if oldest > limit:
                    over[limit] -= 1
        lat.append(ms)
        for limit in over:
            if ms > limit:
                over[limit] += 1
        self._track()

    # -- decisions -------------------------------------------------------------------------------------
    def lateness_p95_ms(self) -> float:
        return float(np.percentile(self._lateness, 95)) if self._lateness else 0.0

    def late_share_over(self, ms: float) -> float:
        """Share of the window's wake-ups that came more than ``ms`` late (counted as samples come and go for
        the two thresholds: the degraded check runs on every tick)."""
        lat = self._lateness
        if not lat:
            return 0.0
        over = self._over.get(ms)
        return (over if over is not None else sum(1 for x in lat if x > ms)) / len(lat)

    @property
    def stt_overloaded(self) -> bool:
        return self.stt_load is not None and self.stt_load.overloaded

    @property
    def degraded(self) -> bool:
        return self.late_share_over(self.degraded_ms) > self.late_share or self.stt_overloaded

    def admit(self) -> bool:
        """May the worker answer one more call without its live calls' audio slipping?"""
        reason = self.refusal_reason()
        if reason is None or not self.admission:
            self.admitted += 1
            return True
        self.refused += 1
        log.warning("refusing a new call: %s", reason)
        return False

    def refusal_reason(self) -> str | None:
        if self.max_calls is not None and self.active_calls is not None and self.active_calls() >= self.max_calls:
            return f"{self.active_calls()} calls up (limit {self.max_calls})"
        late = [x > self.refuse_ms for x in self._lateness]
        share = self.late_share_over(self.refuse_ms)
        idle = self.active_calls is not None and self.active_calls() == 0
        per_second = int(RECENT_S / PERIOD)
        ongoing = any(late[-per_second:])
        # a blip that has passed does not refuse calls for the rest of the window, but lateness that keeps coming
        # back (late steps in RECURRING_SECONDS of the window's seconds) is load, not a blip: refuse on
        recurring = sum(any(late[i:i + per_second]) for i in range(0, len(late), per_second)) >= RECURRING_SECONDS
        if share > self.late_share and (ongoing or recurring) and not idle:  # no call up: no audio to protect
            return (f"{share * 100:.1f} % of the event loop's 20 ms wake-ups over the last {self.window_s:g} s came "
                    f"> {self.refuse_ms:g} ms late (limit {self.late_share * 100:g} %)")
        box = self.box_cpu.share
        if (self.cpu_limit > 0 and box is not None and box >= self.cpu_limit and self.active_calls is not None
                and self.active_calls() >= self.cpu_min_calls):
            return (f"the machine's cores are {box * 100:.0f} % busy over the last {self.box_cpu.window_s:g} s "
                    f"(limit {self.cpu_limit * 100:g} %; idle-class helpers not counted)")
        if self.refuse_on_stt and self.stt_overloaded:
            return "speech-to-text is overloaded (utterances shed or decoding degraded)"
        return None

    def _track(self) -> None:
        now = time.monotonic()
        if self.degraded:
            if self.degraded_since is None:
                self.degraded_since = now
                if now - self._last_log >= 10.0:  # flapping must not flood the log
                    self._last_log = now
                    log.warning("worker degraded: %s", self.snapshot())
        elif self.degraded_since is not None:
            self.degraded_seconds += now - self.degraded_since
            self.degraded_since = None

    def snapshot(self) -> dict[str, Any]:
        lat = list(self._lateness)
        out: dict[str, Any] = {
            "degraded": self.degraded, "admitted": self.admitted, "refused": self.refused,
            "admission": self.admission,
            "late_share": {f">{self.refuse_ms:g}ms": round(self.late_share_over(self.refuse_ms), 4),
                           f">{self.degraded_ms:g}ms": round(self.late_share_over(self.degraded_ms), 4)},
            "loop_lateness_ms": {"p50": round(float(np.percentile(lat, 50)), 2) if lat else None,
                                 "p95": round(float(np.percentile(lat, 95)), 2) if lat else None,
                                 "max": round(max(lat), 2) if lat else None},
            "degraded_seconds": round(self.degraded_seconds, 1),
            "box_cpu_share": None if self.box_cpu.share is None else round(self.box_cpu.share, 3),
        }
        if self.stt_load is not None:
            out["stt"] = self.stt_load.snapshot()
        return out
