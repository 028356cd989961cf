"""The one audio type: int16 mono PCM with its sample rate (and optionally a timestamp)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FRAME_MS = 20


def samples_per_frame(sample_rate: int, frame_ms: int = FRAME_MS) -> int:
    """Samples in one frame of `frame_ms` at `sample_rate` (20 ms: 160 at 8 kHz, 320 at 16 kHz)."""
    n, rem = divmod(sample_rate * frame_ms, 1000)
    if rem:
        raise ValueError(f"{frame_ms} ms is not a whole number of samples at {sample_rate} Hz")
    return n


@dataclass(frozen=True, slots=True)
class AudioFrame:
    """A block of mono int16 PCM. `pts` is the presentation time in samples (e.g. an RTP timestamp)."""

    samples: np.ndarray
    sample_rate: int
    pts: int | None = None

    def __post_init__(self) -> None:
        if self.samples.dtype != np.int16 or self.samples.ndim != 1:
            raise ValueError(
                f"AudioFrame wants 1-D int16 samples, got {self.samples.dtype} {self.samples.shape}"
            )
        if self.sample_rate <= 0:
            raise ValueError(f"bad sample rate {self.sample_rate}")

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.samples) / self.sample_rate

    def __len__(self) -> int:
        return len(self.samples)

    @classmethod
    def silence(cls, sample_rate: int, frame_ms: int = FRAME_MS, pts: int | None = None) -> AudioFrame:
        return cls(np.zeros(samples_per_frame(sample_rate, frame_ms), np.int16), sample_rate, pts)

    def to_bytes(self) -> bytes:
        """Little-endian s16 PCM."""
        return self.samples.astype("<i2", copy=False).tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, sample_rate: int, pts: int | None = None) -> AudioFrame:
        if len(data) % 2:
            raise ValueError("s16 PCM needs an even number of bytes")
        return cls(np.frombuffer(data, "<i2").astype(np.int16), sample_rate, pts)


def float_to_int16(x: np.ndarray) -> np.ndarray:
    """[-1, 1) float → int16 with rounding and clipping."""
    return np.clip(np.rint(x * 32768.0), -32768, 32767).astype(np.int16)


def int16_to_float(x: np.ndarray) -> np.ndarray:
    """int16 → float32 in [-1, 1)."""
    return x.astype(np.float32) * np.float32(1.0 / 32768.0)


class Pcm16Decoder:
    """Little-endian int16 PCM arriving as byte chunks of any length (an HTTP stream may split a sample
    between chunks): each `decode()` returns the whole samples so far and keeps a dangling byte."""

    def __init__(self) -> None:
        self._odd = b""

    def decode(self, data: bytes) -> np.ndarray:
        data, self._odd = self._odd + data, b""
        if len(data) & 1:
            data, self._odd = data[:-1], data[-1:]
        return np.frombuffer(data, "<i2").astype(np.int16)
