"""Bounded int16 ring buffers: one per call direction, drop-oldest on overflow, with counters."""

from __future__ import annotations

import numpy as np


class AudioRing:
    """A fixed-capacity FIFO of int16 samples.

    Writing more than fits drops the *oldest* samples (real-time audio prefers fresh data) and counts them
    in `dropped`. All copies are slice copies (at most two per call); nothing loops per sample.
    """

    __slots__ = ("_buf", "_cap", "_head", "_size", "dropped", "total_written", "total_read", "underruns")

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self._buf = np.zeros(capacity, np.int16)
        self._cap = capacity
        self._head = 0  # index of the oldest sample
        self._size = 0
        self.dropped = 0  # samples discarded by overflow
        self.total_written = 0
        self.total_read = 0
        self.underruns = 0  # read_padded calls that had to pad with silence

    @classmethod
    def for_duration(cls, sample_rate: int, seconds: float) -> AudioRing:
        return cls(max(1, round(sample_rate * seconds)))

    @property
    def capacity(self) -> int:
        return self._cap

    @property
    def available(self) -> int:
        """Samples that can be read."""
        return self._size

    @property
    def free(self) -> int:
        return self._cap - self._size

    def __len__(self) -> int:
        return self._size

    def write(self, samples: np.ndarray) -> int:
        """Append samples; returns how many older samples were dropped to make room."""
        if samples.dtype != np.int16:
            raise TypeError(f"AudioRing holds int16, got {samples.dtype}")
        n = len(samples)
        if n == 0:
            return 0
        self.total_written += n
        dropped = 0
        if n >= self._cap:  # only the newest `cap` samples survive
            dropped = self._size + n - self._cap
            self._buf[:] = samples[n - self._cap :]
            self._head, self._size = 0, self._cap
            self.dropped += dropped
            return dropped
        overflow = self._size + n - self._cap
        if overflow > 0:
            self._head = (self._head + overflow) % self._cap
            self._size -= overflow
            dropped = overflow
            self.dropped += overflow
        tail = (self._head + self._size) % self._cap
        first = min(n, self._cap - tail)
        self._buf[tail : tail + first] = samples[:first]
        if first < n:
            self._buf[: n - first] = samples[first:]
        self._size += n
        return dropped

    def peek_into(self, out: np.ndarray) -> int:
        """Copy up to len(out) of the oldest samples into `out` without consuming; returns the count."""
        n = min(len(out), self._size)
        first = min(n, self._cap - self._head)
        out[:first] = self._buf[self._head : self._head + first]
        if first < n:
            out[first:n] = self._buf[: n - first]
        return n

    def peek(self, n: int) -> np.ndarray:
        """A copy of up to `n` of the oldest samples, not consumed."""
        out = np.empty(min(n, self._size), np.int16)
        self.peek_into(out)
        return out

    def skip(self, n: int) -> int:
        """Consume up to `n` samples without copying; returns the count."""
        n = min(n, self._size)
        self._head = (self._head + n) % self._cap
        self._size -= n
        self.total_read += n
        if self._size == 0:
            self._head = 0
        return n

    def read_into(self, out: np.ndarray) -> int:
        """Consume up to len(out) samples into `out`; returns the count."""
        return self.skip(self.peek_into(out))

    def read(self, n: int) -> np.ndarray:
        """Consume and return up to `n` samples (fewer if fewer are buffered)."""
        out = self.peek(n)
        self.skip(len(out))
        return out

    def read_padded(self, n: int) -> np.ndarray:
        """Consume exactly `n` samples, padding the end with silence on underrun (counted in `underruns`)."""
        out = np.zeros(n, np.int16)
        got = self.read_into(out)
        if got < n:
            self.underruns += 1
        return out

    def clear(self) -> int:
        """Drop everything buffered (e.g. a barge-in flush); returns how many samples were discarded.

        Cleared samples are not counted as `dropped` (which means overflow)."""
        n = self._size
        self._head = self._size = 0
        return n
