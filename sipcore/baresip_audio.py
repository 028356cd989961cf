"""One call's PCM slot in the baresip engine, driven from the 20 ms media tick with as little work as possible.

baresip-python's ``CallAudio`` allocates on every operation (a 32 KiB zeroed read buffer per read, an info
struct and an 11-field dataclass per probe): at 100 calls x 50 ticks/s that was about a third of the event
loop's time inside the tick (py-spy, bench-sip). This port keeps one probe struct and one read buffer per
call, probes once per tick (receive and transmit fill levels and the streams' epoch in one native call)
and calls the same native functions ``CallAudio`` does, with the same epoch rule: a renegotiation replaces
the streams and the native side answers ``-ESTALE`` until the port re-probes. Engine module: it imports the
pinned engine library's native binding.
"""

from __future__ import annotations

import errno
import time

import numpy as np
from baresip._native import ffi, lib

_EMPTY = np.zeros(0, np.int16)
_FRESH = 0.005  # s: a probe this recent still tells how much is queued for transmission (it only drains)


class AudioPort:
    def __init__(self, handle: int) -> None:
        self._handle = handle
        self._info = ffi.new("struct bp_audio_info *")
        self._cap = 4096
        self._buf = ffi.new("uint8_t[]", self._cap)
        self._epoch: int | None = None
        self._probed_at = -1.0
        self._tx_fill = 0  # bytes queued for transmission, as of the last probe plus what we wrote since
        self._flushing = False  # a flush requested and not yet applied by the engine's transmit thread

    def _probe(self) -> bool:
        if lib.bp_audio_probe(self._handle, self._info) != 0:
            self._epoch = None
            return False
        self._epoch = int(self._info.epoch)
        self._tx_fill = int(self._info.tx_fill)
        self._probed_at = time.monotonic()
        return True

    def read(self) -> np.ndarray:
        """Everything received since the last read (int16 at the call's rate); empty without audio."""
        for _ in range(2):  # a second pass after a renegotiation re-bound the port
            if not self._probe():
                return _EMPTY
            want = int(self._info.rx_fill) & ~1
            if want <= 0:
                return _EMPTY
            if want > self._cap:
                self._cap = 1 << (want - 1).bit_length()
                self._buf = ffi.new("uint8_t[]", self._cap)
            got = lib.bp_audio_read(self._handle, self._epoch, self._buf, want)
            if got >= 0:
                return np.frombuffer(ffi.buffer(self._buf, got & ~1), np.int16).copy()
            self._epoch = None
            if -got != errno.ESTALE:
                return _EMPTY
        return _EMPTY

    def tx_buffered(self) -> int:
        """Samples queued for transmission (the tick's own probe when it is fresh: it can only have drained,
        so the figure errs on the full side and a top-up never overfills)."""
        if self._epoch is None or time.monotonic() - self._probed_at > _FRESH:
            if not self._probe():
                return 0
        return self._tx_fill // 2

    def write(self, pcm: np.ndarray) -> int:
        """Queue int16 samples for transmission; returns the samples taken (0 without audio, and while a
        flush is still to be applied: the caller offers them again on its next tick)."""
        data = np.ascontiguousarray(pcm, dtype=np.int16)
        if not len(data):
            return 0
        if self._flushing and not self._flush_applied():
            return 0
        for _ in range(2):
            if self._epoch is None and not self._probe():
                return 0
            n = lib.bp_audio_write(self._handle, self._epoch, ffi.from_buffer("uint8_t[]", data), data.nbytes)
            if n >= 0:
                self._tx_fill += n
                return int(n) // 2
            self._epoch = None
            if -n != errno.ESTALE:
                return 0
        return 0

    def flush_tx(self) -> None:
        """Drop what is queued for transmission (barge-in, or padding before a reply).

        The engine applies a flush on its transmit thread's next tick (every 4 ms), to whatever is queued
        then: audio written between the request and that tick was dropped with what the flush was meant for
        (every reply lost its first 60 ms). So a flush is requested only when something is queued, and
        `write` takes nothing until the engine shows it applied (the queue empty; nothing is written
        meanwhile, so empty can only mean flushed)."""
        if not self._probe() or self._tx_fill == 0:
            return
        if lib.bp_audio_flush_tx(self._handle, self._epoch) != 0:
            self._epoch = None
            return
        self._flushing = True

    def _flush_applied(self) -> bool:
        if not self._probe():
            return False
        if self._tx_fill:
            return False
        self._flushing = False
        return True
