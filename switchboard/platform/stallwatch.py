"""Notices when the event loop stops turning, and logs where it is stuck.

A heartbeat callback on the loop stamps the time every ``interval``; a daemon thread checks the stamp.
When the loop has not turned for ``threshold`` it logs, once per stall, the loop thread's Python stack
at that moment (what is running instead of the media tick), and when the loop turns again how long the
stall lasted. Stalls are counted for ``/health`` and the benchmarks. The thread only reads a float and,
on a stall, one frame stack: it never touches the loop's objects.

A stall can also be another thread holding the GIL (a C extension that does not release it): then this
thread cannot run either. ``dump_after`` arms ``faulthandler``'s C watchdog, which needs no GIL, to write
every thread's stack to stderr when the loop has not turned for that long.

The garbage collector is watched too (``gc.callbacks``): a full collection stops every Python thread for as
long as it scans — 119 ms for the 150,000 objects a worker holds after start-up, measured here, before
`freeze_startup_objects()` — so collections longer than ``gc_log_ms`` are logged with their generation and
counted (``gc_pauses``, ``gc_worst_ms``): a stall the stack alone would blame on whatever code allocated.
"""

from __future__ import annotations

import asyncio
import faulthandler
import gc
import logging
import sys
import threading
import time
import traceback

log = logging.getLogger(__name__)


class StallWatch:
    def __init__(self, *, threshold: float = 0.1, interval: float = 0.02, dump_after: float | None = None,
                 gc_log_ms: float = 20.0) -> None:
        self.threshold, self.interval, self.dump_after = threshold, interval, dump_after
        self.gc_log_ms = gc_log_ms
        self.gc_pauses = 0  # collections longer than gc_log_ms since start
        self.gc_worst_ms = 0.0
        self._gc_started = 0.0
        self.stalls = 0  # stalls longer than the threshold since start
        self.worst_ms = 0.0
        self._beat = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop_thread = 0
        self._handle: asyncio.TimerHandle | None = None
        self._stalled_since: float | None = None

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._beat = time.monotonic()
        self._tick(loop)
        self._thread = threading.Thread(target=self._watch, name="stallwatch", daemon=True)
        self._thread.start()
        gc.callbacks.append(self._on_gc)

    def stop(self) -> None:
        self._stop.set()
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        if self.dump_after:
            faulthandler.cancel_dump_traceback_later()
        if self._handle is not None:
            self._handle.cancel()
        if self._thread is not None:
            self._thread.join(timeout=1.0)

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        now = time.monotonic()
        since = self._stalled_since
        if since is not None:
            self._stalled_since = None
            ms = (now - since) * 1000.0
            self.worst_ms = max(self.worst_ms, ms)
            log.warning("event loop stalled %.0f ms", ms)
        self._beat = now
        if self.dump_after:
            faulthandler.dump_traceback_later(self.dump_after, repeat=False)
        self._handle = loop.call_later(self.interval, self._tick, loop)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
            return
        ms = (time.perf_counter() - self._gc_started) * 1000.0
        if ms >= self.gc_log_ms:
            self.gc_pauses += 1
            self.gc_worst_ms = max(self.gc_worst_ms, ms)
            log.warning("garbage collection of generation %d took %.0f ms (%d objects collected)",
                        info.get("generation", -1), ms, info.get("collected", 0))

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            beat = self._beat
            age = time.monotonic() - beat
            if age < self.threshold or self._stalled_since == beat:
                continue
            self._stalled_since = beat
            self.stalls += 1
            frame = sys._current_frames().get(self._loop_thread)
            where = "".join(traceback.format_stack(frame, limit=12)) if frame is not None else "(no frame)\n"
            log.warning("event loop has not turned for %.0f ms; it is running:\n%s", age * 1000.0, where.rstrip())


def freeze_startup_objects() -> int:
    """Move everything allocated so far (modules, SDK classes, pydantic schemas, models: ~150,000 objects)
    out of the collector's sight (`gc.freeze`): a full collection then scans only what calls allocate. Call
    it once start-up is done. Returns how many objects were frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def thaw_startup_objects() -> None:
    """Undo `freeze_startup_objects` (at stop: a process that starts another server, such as the test suite,
    must not keep the first one's objects out of collection forever)."""
    gc.unfreeze()
