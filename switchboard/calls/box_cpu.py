"""How busy the machine's cores are with work that competes with real-time audio.

Every worker on a box shares its cores: one worker's admission sees its own tick's lateness only once the cores
are already saturated, by then every worker's frames slip (two workers with cloud speech-to-text on two cores:
58 talking calls admitted, 91.9 % of frames on time; 40 calls: 99.9 %). The machine's busy share is the early
signal they all share. Processes in the idle scheduling class (our speech-to-text helpers: they run only on time
nothing else wants, and they fill it) are not counted: they give way to the audio at once.

Linux only (/proc); elsewhere `share` stays None and nothing is refused on it.
"""

from __future__ import annotations

import os
from collections import deque

SCHED_IDLE = 5  # /proc/PID/stat field 41 (policy)
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _busy_and_total() -> tuple[float, float]:
    """Seconds of CPU time since boot, over all cores: (busy, total)."""
    with open("/proc/stat") as fh:
        f = [int(x) for x in fh.readline().split()[1:]]
    idle = f[3] + (f[4] if len(f) > 4 else 0)  # idle + iowait
    total = sum(f[:8])  # user nice system idle iowait irq softirq steal (guest time is inside user)
    return (total - idle) / _TICKS, total / _TICKS


def _idle_class_seconds() -> float:
    """CPU seconds used so far by the live processes in the idle scheduling class."""
    out = 0.0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as fh:
                raw = fh.read()
        except OSError:
            continue  # gone meanwhile
        f = raw[raw.rindex(")") + 2 :].split()
        if len(f) > 38 and int(f[38]) == SCHED_IDLE:  # policy; utime, stime are f[11], f[12]
            out += (int(f[11]) + int(f[12])) / _TICKS
    return out


class BoxCpu:
    """The share of all cores busy with anything but the idle class, over the last ``window_s`` seconds of
    samples. `sample()` reads /proc (a few ms: call it off the event loop, about once a second)."""

    def __init__(self, window_s: float = 3.0) -> None:
        self.window_s = window_s
        self._samples: deque[tuple[float, float, float]] = deque()  # (total, busy, idle-class) CPU seconds
        self.share: float | None = None

    def sample(self) -> float | None:
        try:
            busy, total = _busy_and_total()
            idle_class = _idle_class_seconds()
        except (OSError, ValueError, IndexError):
            return self.share
        self.add(total, busy, idle_class)
        return self.share

    def add(self, total: float, busy: float, idle_class: float) -> None:
        """One reading of the cumulative counters (seconds over all cores)."""
        samples = self._samples
        cores = os.cpu_count() or 1
        samples.append((total, busy, idle_class))
        while len(samples) > 2 and (samples[-1][0] - samples[1][0]) / cores >= self.window_s:
            samples.popleft()
        (t0, b0, i0), (t1, b1, i1) = samples[0], samples[-1]
        if t1 > t0:
            # an idle-class process that ended inside the window takes its time with it: never below 0
            self.share = max(0.0, min(1.0, ((b1 - b0) - max(0.0, i1 - i0)) / (t1 - t0)))
