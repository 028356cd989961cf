"""Speech fixtures generated on the fly with espeak-ng (no binary files in the repository)."""

from __future__ import annotations

import io
import subprocess
import wave

import numpy as np
import pytest

from media.resample import Resampler


def espeak(text: str) -> tuple[np.ndarray, int]:
    """Synthesise `text` with espeak-ng; returns (int16 samples, sample rate)."""
    wav = subprocess.run(["espeak-ng", "--stdout", text], capture_output=True, check=True, timeout=30).stdout
    with wave.open(io.BytesIO(wav)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.int16), w.getframerate()


def to_rate(x: np.ndarray, rate: int, target: int) -> np.ndarray:
    return Resampler(rate, target).process(x)


@pytest.fixture(scope="session")
def speech_16k() -> np.ndarray:
    x, rate = espeak("Hello, I would like to book a table for two people tomorrow evening, please.")
    return to_rate(x, rate, 16000)


@pytest.fixture(scope="session")
def speech_8k() -> np.ndarray:
    x, rate = espeak("Could you tell me when the pharmacy opens on Saturday morning?")
    return to_rate(x, rate, 8000)


@pytest.fixture(scope="session")
def vad_model():
    from media.vad import SileroModel

    return SileroModel()  # make test installs the model (silero-vad, without its torch dependencies)
