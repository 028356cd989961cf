"""Silero VAD through ONE shared onnxruntime session, batched across streams.

`VadBank` keeps every stream's recurrent state `(2, 128)` and its audio context (the last 64 samples at
16 kHz, 32 at 8 kHz) in two arrays indexed by a slot number, so one tick gathers the streams that have a
full window, runs ONE `session.run` for all of them and scatters the new states back: a handful of numpy
operations whatever the number of streams. Outputs are identical to running each stream on its own.

The model file comes from the `silero-vad` wheel (install it with `pip install --no-deps silero-vad`;
its declared dependencies pull torch, which this path does not need, and importing the `silero_vad`
package would import torch). We only locate its bundled `silero_vad.onnx`.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

WINDOW = {16000: 512, 8000: 256}  # samples per inference (32 ms)
CONTEXT = {16000: 64, 8000: 32}
STATE_SIZE = 128


def default_model_path() -> Path:
    """`$SWITCHBOARD_VAD_MODEL`, else the ONNX file bundled in the silero-vad wheel (without importing it)."""
    env = os.environ.get("SWITCHBOARD_VAD_MODEL")
    if env:
        return Path(env)
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("silero_vad.onnx not found: pip install --no-deps silero-vad")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "silero_vad.onnx"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the silero-vad package")
    return path


class SileroModel:
    """The shared onnxruntime session (one per process). Single-threaded: the tick is one thread and
    batching, not intra-op threads, is what makes it cheap."""

    def __init__(self, model_path: str | os.PathLike[str] | None = None, *, threads: int = 1) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3
        self.path = Path(model_path) if model_path is not None else default_model_path()
        self.session = ort.InferenceSession(
            str(self.path), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self._sr = {rate: np.array(rate, np.int64) for rate in WINDOW}
        self.runs = 0  # session.run calls, for tests and benchmarks

    def run(self, x: np.ndarray, state: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
        """x: (B, context + window) float32; state: (2, B, 128). Returns (probabilities (B,), new state)."""
        self.runs += 1
        out, new_state = self.session.run(None, {"input": x, "state": state, "sr": self._sr[sample_rate]})
        return out[:, 0], new_state


class VadBank:
    """Per-stream VAD state for many streams at one sample rate (16000 or 8000), sharing one model."""

    def __init__(self, model: SileroModel, sample_rate: int = 16000, capacity: int = 64) -> None:
        if sample_rate not in WINDOW:
            raise ValueError(f"Silero VAD runs at 8000 or 16000 Hz, not {sample_rate}")
        self.model = model
        self.sample_rate = sample_rate
        self.window = WINDOW[sample_rate]
        self.context = CONTEXT[sample_rate]
        self._state = np.zeros((2, capacity, STATE_SIZE), np.float32)
        self._ctx = np.zeros((capacity, self.context), np.float32)
        self._free = list(range(capacity - 1, -1, -1))

    @property
    def capacity(self) -> int:
        return self._ctx.shape[0]

    def open(self) -> int:
        """A fresh slot (zero state) for a new stream."""
        if not self._free:
            self._grow()
        slot = self._free.pop()
        self.reset(slot)
        return slot

    def close(self, slot: int) -> None:
        self._free.append(slot)

    def reset(self, slot: int) -> None:
        self._state[:, slot] = 0.0
        self._ctx[slot] = 0.0

    def _grow(self) -> None:
        old = self.capacity
        self._state = np.concatenate([self._state, np.zeros_like(self._state)], axis=1)
        self._ctx = np.concatenate([self._ctx, np.zeros_like(self._ctx)], axis=0)
        self._free.extend(range(2 * old - 1, old - 1, -1))

    def infer(self, slots: Sequence[int] | np.ndarray, windows: np.ndarray) -> np.ndarray:
        """Speech probability of one window per listed stream, in ONE model run.

        windows: (B, window) int16 or float32 in [-1, 1); slots: the B streams' slots (distinct).
        """
        idx = np.asarray(slots, dtype=np.intp)
        if windows.ndim != 2 or windows.shape != (len(idx), self.window):
            raise ValueError(f"want windows of shape ({len(idx)}, {self.window}), got {windows.shape}")
        if len(idx) == 0:
            return np.zeros(0, np.float32)
        state, ctx = self.gather(idx)
        probs, state, ctx = self.run_detached(state, ctx, windows)
        self.scatter(idx, state, ctx)
        return probs

    def gather(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Copies of the listed slots' state and context, for `run_detached` on another thread."""
        return self._state[:, idx], self._ctx[idx]

    def scatter(self, idx: np.ndarray, state: np.ndarray, ctx: np.ndarray) -> None:
        """Store what `run_detached` returned back into the listed slots."""
        self._state[:, idx] = state
        self._ctx[idx] = ctx

    def run_detached(self, state: np.ndarray, ctx: np.ndarray,
                     windows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One model run over (state, context) copies, touching nothing of the bank (safe on a thread
        while the owner opens and closes slots): (probabilities, new state, new context)."""
        if windows.dtype == np.int16:
            w = windows.astype(np.float32)
            w *= np.float32(1.0 / 32768.0)
        else:
            w = windows.astype(np.float32, copy=False)
        x = np.concatenate([ctx, w], axis=1)
        probs, new_state = self.model.run(x, state, self.sample_rate)
        return probs, new_state, x[:, -self.context :]


class VadStream:
    """One stream's VAD over arbitrary-length input: buffers to whole windows, yields a probability per
    window. Convenience for single-stream users (STT gating, tests); the media tick batches instead."""

    def __init__(self, bank: VadBank) -> None:
        self.bank = bank
        self.slot = bank.open()
        self._pending = np.zeros(0, np.int16)

    def process(self, pcm: np.ndarray) -> np.ndarray:
        buf = np.concatenate([self._pending, pcm]) if len(self._pending) else pcm
        n = len(buf) // self.bank.window
        self._pending = buf[n * self.bank.window :].copy()
        probs = np.empty(n, np.float32)
        for i in range(n):
            chunk = buf[i * self.bank.window : (i + 1) * self.bank.window][None, :]
            probs[i] = self.bank.infer([self.slot], chunk)[0]
        return probs

    def close(self) -> None:
        self.bank.close(self.slot)
