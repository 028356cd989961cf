"""Test speech made at test time with espeak-ng: resampled to 16 kHz, padded with silence and faint noise."""

from __future__ import annotations

import io
import os
import subprocess
import wave
from pathlib import Path

import numpy as np

from media.resample import Resampler


def espeak_wav(text: str, voice: str = "en-us") -> tuple[np.ndarray, int]:
    wav = subprocess.run(["espeak-ng", "--stdout", "-v", voice, text], capture_output=True, check=True,
                         timeout=30).stdout
    with wave.open(io.BytesIO(wav)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.int16), w.getframerate()


def utterance(text: str, voice: str = "en-us", *, pad_s: float = 0.4, noise: float = 30.0, seed: int = 1,
              rate: int = 16000) -> np.ndarray:
    x, r = espeak_wav(text, voice)
    y = Resampler(r, rate).process(x)
    pad = np.zeros(int(pad_s * rate), np.int16)
    y = np.concatenate([pad, y, pad]).astype(np.float64)
    y += np.random.default_rng(seed).normal(0.0, noise, len(y))
    return np.clip(np.rint(y), -32768, 32767).astype(np.int16)


def wer(ref: str, hyp: str) -> float:
    r, h = ref.split(), hyp.split()
    d = np.zeros((len(r) + 1, len(h) + 1))
    d[:, 0] = np.arange(len(r) + 1)
    d[0, :] = np.arange(len(h) + 1)
    for i in range(1, len(r) + 1):
        for j in range(1, len(h) + 1):
            d[i, j] = min(d[i - 1, j] + 1, d[i, j - 1] + 1, d[i - 1, j - 1] + (r[i - 1] != h[j - 1]))
    return float(d[-1, -1]) / max(1, len(r))


def children_named(comm: str) -> list[int]:
    """Live (not zombie) child processes of this test process whose command name is ``comm``."""
    me, out = os.getpid(), []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().split()
        except OSError:
            continue
        if fields[1] == f"({comm})" and int(fields[3]) == me and fields[2] != "Z":
            out.append(int(fields[0]))
    return out


def same_audio(a: np.ndarray, b: np.ndarray) -> bool:
    """The same synthesis: soxr's output may differ by a few LSB with how the stream was chunked."""
    n = min(len(a), len(b))
    return abs(len(a) - len(b)) <= 2 and n > 0 and int(np.abs(a[:n].astype(np.int32) - b[:n]).max()) <= 4
