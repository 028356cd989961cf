"""Stereo call recordings (caller left, agent right, int16 WAV), written incrementally and crash-safe.

The hot path (`StereoRecorder.write`, called from the media tick) only copies samples into per-channel
lists; about once a second (`flush_seconds`) it interleaves what is complete into one bytes block (~µs
of numpy) and hands it to a `RecordingWriter`: ONE daemon thread shared by every recording in the
process, fed by a FIFO queue. That thread appends the block, then rewrites the RIFF and data sizes in the
header and flushes, so at every moment the file on disk is a valid WAV holding everything but the last
second. `close()` writes the rest and finalises; `repair(path)` fixes the header of a file a crash left
behind (its sizes lag the data by at most one block) and is meant for start-up.

Alignment: both channels are written as heard/played, in real time (e.g. once per media tick). A block
written to a channel that lags the other by more than `skew_seconds` (default 60 ms) means that channel
was silent: it is padded with zeros so the block ends where the other channel is now. Smaller lags are
kept (a channel whose frames come a tick after the other's is not shifted). The file advances to the
longer channel minus a hold-back (`holdback_seconds`, 0.2 s), padding a silent channel with zeros, so an
agent that says nothing costs nothing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import queue
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from media.resample import Resampler

log = logging.getLogger(__name__)

HEADER_BYTES = 44


def wav_header(sample_rate: int, channels: int, data_bytes: int) -> bytes:
    block = channels * 2
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + data_bytes, b"WAVE", b"fmt ", 16, 1, channels, sample_rate,
        sample_rate * block, block, 16, b"data", data_bytes,
    )


class RecordingWriter:
    """One background thread doing all recording file I/O, in submission order."""

    def __init__(self, *, fsync: bool = False) -> None:
        self.fsync = fsync
        self._q: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="recording-writer", daemon=True)
        self._thread.start()

    def submit(self, job: tuple[Any, ...]) -> None:
        self._q.put(job)

    def stop(self, timeout: float | None = 10.0) -> None:
        """Finish queued jobs and end the thread (blocking)."""
        self._q.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while (job := self._q.get()) is not None:
            op, rec = job[0], job[1]
            try:
                getattr(self, "_" + op)(rec, *job[2:])
            except Exception as e:  # keep serving the other recordings
                log.exception("recording %s: %s failed", rec.path, op)
                rec.error = e
                if op == "close":
                    job[2].set_exception(e)

    def _open(self, rec: StereoRecorder) -> None:
        Path(rec.path).parent.mkdir(parents=True, exist_ok=True)
        f: BinaryIO = open(rec.path, "wb")  # noqa: SIM115 - held open across jobs, closed by _close
        rec._file = f
        f.write(wav_header(rec.sample_rate, 2, 0))
        f.flush()

    def _append(self, rec: StereoRecorder, data: bytes) -> None:
        f = rec._file
        if f is None or rec.error is not None:
            return
        f.write(data)
        rec._data_bytes_on_disk += len(data)
        self._patch(f, rec)

    def _patch(self, f: BinaryIO, rec: StereoRecorder) -> None:
        n = rec._data_bytes_on_disk
        f.seek(4)
        f.write(struct.pack("<I", 36 + n))
        f.seek(40)
        f.write(struct.pack("<I", n))
        f.seek(0, os.SEEK_END)
        f.flush()
        if self.fsync:
            os.fsync(f.fileno())

    def _close(self, rec: StereoRecorder, done: concurrent.futures.Future[int]) -> None:
        f = rec._file
        if f is not None:
            rec._file = None
            f.close()
        if rec.error is not None:
            done.set_exception(rec.error)
        else:
            done.set_result(rec._data_bytes_on_disk // 4)


_default_writer: RecordingWriter | None = None
_default_lock = threading.Lock()


def default_writer() -> RecordingWriter:
    global _default_writer
    with _default_lock:
        if _default_writer is None:
            _default_writer = RecordingWriter()
        return _default_writer


class _Channel:
    __slots__ = ("parts", "length", "resampler")

    def __init__(self) -> None:
        self.parts: list[np.ndarray] = []
        self.length = 0  # samples buffered (at the recording rate)
        self.resampler: Resampler | None = None

    def add(self, samples: np.ndarray, rate: int, out_rate: int) -> None:
        if samples.dtype != np.int16 or samples.ndim != 1:
            raise ValueError("recordings take 1-D int16 samples")
        if rate != out_rate:
            if self.resampler is None or self.resampler.in_rate != rate:
                self.resampler = Resampler(rate, out_rate)
            samples = self.resampler.process(samples)
        else:
            samples = samples.copy()
        if len(samples):
            self.parts.append(samples)
            self.length += len(samples)

    def insert_silence(self, at: int, n: int) -> None:
        data = np.concatenate(self.parts)
        self.parts = [np.concatenate([data[:at], np.zeros(n, np.int16), data[at:]])]
        self.length += n

    def take(self, n: int) -> np.ndarray:
        """The first n samples (zero-padded if fewer are buffered); the rest stays."""
        if not self.parts:
            return np.zeros(n, np.int16)
        data = np.concatenate(self.parts) if len(self.parts) > 1 else self.parts[0]
        out = np.zeros(n, np.int16)
        m = min(n, len(data))
        out[:m] = data[:m]
        rest = data[m:]
        self.parts = [rest] if len(rest) else []
        self.length = len(rest)
        return out


class StereoRecorder:
    """`write(caller, agent)` int16 mono blocks (either may be None); `close()` finalises the WAV."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        sample_rate: int = 16000,
        *,
        flush_seconds: float = 1.0,
        holdback_seconds: float = 0.2,
        skew_seconds: float = 0.06,
        writer: RecordingWriter | None = None,
    ) -> None:
        self.path = os.fspath(path)
        self.sample_rate = sample_rate
        self.flush_samples = max(1, round(flush_seconds * sample_rate))
        self.skew = round(skew_seconds * sample_rate)
        self.holdback = max(self.skew, round(holdback_seconds * sample_rate))
        self.frames_written = 0  # stereo frames handed to the writer
        self.error: BaseException | None = None
        self._writer = writer or default_writer()
        self._caller, self._agent = _Channel(), _Channel()
        self._file: BinaryIO | None = None  # owned by the writer thread
        self._data_bytes_on_disk = 0  # ditto
        self._closed: concurrent.futures.Future[int] | None = None
        self._writer.submit(("open", self))

    @property
    def duration(self) -> float:
        """Seconds recorded so far (handed to the writer, plus what is buffered)."""
        return (self.frames_written + max(self._caller.length, self._agent.length)) / self.sample_rate

    def write(self, caller: np.ndarray | None = None, agent: np.ndarray | None = None, *,
              rate: int | None = None) -> None:
        """Append what the caller said and what the agent played since the last call (at `rate`, default
        the recording's rate). Never blocks: file I/O happens on the writer thread."""
        if self._closed is not None:
            raise RuntimeError("recording is closed")
        rate = rate or self.sample_rate
        if caller is not None:
            self._add(self._caller, self._agent, caller, rate)
        if agent is not None:
            self._add(self._agent, self._caller, agent, rate)
        ahead = max(self._caller.length, self._agent.length) - self.holdback
        if ahead >= self.flush_samples:
            self._emit(ahead)

    def write_caller(self, samples: np.ndarray, rate: int | None = None) -> None:
        self.write(samples, None, rate=rate)

    def write_agent(self, samples: np.ndarray, rate: int | None = None) -> None:
        self.write(None, samples, rate=rate)

    def _add(self, ch: _Channel, other: _Channel, samples: np.ndarray, rate: int) -> None:
        before = ch.length
        ch.add(samples, rate, self.sample_rate)
        gap = other.length - ch.length
        if gap > self.skew:  # this channel was silent until now: its block ends where the other is
            ch.insert_silence(before, gap)

    def _emit(self, n: int) -> None:
        if n <= 0:
            return
        stereo = np.empty((n, 2), "<i2")
        stereo[:, 0] = self._caller.take(n)
        stereo[:, 1] = self._agent.take(n)
        self.frames_written += n
        self._writer.submit(("append", self, stereo.tobytes()))

    def close(self) -> concurrent.futures.Future[int]:
        """Write what is buffered and finalise the file; the future gives the frame count (idempotent)."""
        if self._closed is None:
            self._emit(max(self._caller.length, self._agent.length))
            self._closed = concurrent.futures.Future()
            self._writer.submit(("close", self, self._closed))
        return self._closed

    async def aclose(self) -> int:
        return await asyncio.wrap_future(self.close())


@dataclass(frozen=True, slots=True)
class WavInfo:
    sample_rate: int
    channels: int
    frames: int
    repaired: bool

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def repair(path: str | os.PathLike[str]) -> WavInfo:
    """Make the RIFF and data sizes match the audio actually in the file (a crash leaves them lagging),
    dropping a torn trailing frame. Blocking file I/O: run at start-up or in an executor. Raises
    `ValueError` when the file is not a PCM WAV whose header survived."""
    with open(path, "r+b") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise ValueError(f"{path}: not a WAV file")
        size = f.seek(0, os.SEEK_END)
        pos, fmt = 12, None
        while pos + 8 <= size:
            f.seek(pos)
            cid, csize = struct.unpack("<4sI", f.read(8))
            if cid == b"fmt ":
                raw = f.read(16)
                if len(raw) < 16:
                    break
                fmt = struct.unpack("<HHIIHH", raw)
            elif cid == b"data":
                if fmt is None:
                    raise ValueError(f"{path}: data chunk before fmt")
                _, channels, rate, _, block, _ = fmt
                start = pos + 8
                frames = (size - start) // block
                want = frames * block
                riff = struct.unpack("<I", head[4:8])[0]
                repaired = csize != want or riff != start + want - 8 or size - start != want
                if repaired:
                    f.truncate(start + want)
                    f.seek(4)
                    f.write(struct.pack("<I", start + want - 8))
                    f.seek(pos + 4)
                    f.write(struct.pack("<I", want))
                return WavInfo(rate, channels, frames, repaired)
            pos += 8 + csize + (csize & 1)
        raise ValueError(f"{path}: no data chunk (header incomplete)")
