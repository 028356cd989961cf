"""ONE Whisper model (faster-whisper, int8, one CPU thread) in a helper process, shared by every call.

Whisper costs about a second of a core per utterance whatever its length (it pads to a 30 s window), so
it is a scarce, shared resource: `WhisperService` keeps one model in one spawned child process
(`agents.childproc.harden` first: it dies with the server, runs at a lower priority) and feeds it one
utterance at a time from a BOUNDED queue. When `max_queue` utterances are already waiting or decoding,
`transcribe()` raises `WhisperOverloaded` at once instead of queueing: the wait an accepted utterance can
see is bounded by `max_queue` decodes (≈ `max_queue` × 0.3–1 s on one core, `worst_wait_s`). `depth` is
the queue's length now, for load shedding and metrics.

The child is started from the event loop's thread (PR_SET_PDEATHSIG follows the thread that started it);
the parent only waits on a pipe from one executor thread. A child that dies or hangs fails its utterance
(a retryable ProviderError) and is started again for the next one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import multiprocessing as mp
import os
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from .base import ProviderError
from .whisper_models import DEFAULT_MODEL

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
DEFAULT_MAX_QUEUE = 4
_DECODE_TIMEOUT_S = 120.0  # a hung helper; at nice 10 on a saturated box a decode can take tens of seconds
_START_TIMEOUT_S = 600.0  # first use joins the base model's halves (~150 MB); at nice 10 on a busy box: slow


@dataclass(frozen=True, slots=True)
class WhisperResult:
    text: str
    avg_logprob: float  # mean token log-probability (Whisper's own confidence)
    no_speech_prob: float
    compression_ratio: float
    decode_s: float  # wall time of the decode in the child
    cpu_s: float  # CPU time of the decode in the child


class WhisperOverloaded(ProviderError):
    """The shared model's queue is full: the utterance was not queued (shed)."""

    def __init__(self, depth: int) -> None:
        super().__init__(f"the Whisper queue is full ({depth} utterances)", retryable=True, reason="overloaded",
                         provider="whisper")


def _decode(model: Any, audio: np.ndarray) -> WhisperResult:
    t0, c0 = time.perf_counter(), time.process_time()
    segments, _info = model.transcribe(
        audio, language="en", beam_size=5, temperature=0.0, condition_on_previous_text=False,
        without_timestamps=True, vad_filter=False)
    segs = list(segments)
    text = " ".join(s.text.strip() for s in segs).strip()
    n = max(1, len(segs))
    return WhisperResult(
        text,
        sum(s.avg_logprob for s in segs) / n if segs else -10.0,
        max((s.no_speech_prob for s in segs), default=1.0),
        max((s.compression_ratio for s in segs), default=0.0),
        time.perf_counter() - t0, time.process_time() - c0)


def _serve(conn: Connection, model_name: str, parent_pid: int, threads: int) -> None:
    """The child: harden, load the model once, warm it, then one utterance at a time."""
    from agents.childproc import harden

    harden(parent_pid)
    try:
        from faster_whisper import WhisperModel

        from .whisper_models import model_dir

        model = WhisperModel(str(model_dir(model_name)), device="cpu", compute_type="int8", cpu_threads=threads,
                             num_workers=1, local_files_only=True)
        # the first decode allocates the encoder's buffers: pay it now, not on the first call
        _decode(model, np.random.default_rng(0).normal(0.0, 0.001, SAMPLE_RATE).astype(np.float32))
    except Exception as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ok", None))
    while True:
        try:
            message = conn.recv_bytes()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        if not message:  # b"": stop
            return
        try:
            pcm = np.frombuffer(message, np.int16).astype(np.float32) / 32768.0
            conn.send(("ok", _decode(model, pcm)))
        except Exception as exc:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class WhisperService:
    """The shared model: `await start()` (start-up), `await transcribe(pcm16k)`, `depth`, `aclose()`."""

    def __init__(self, model: str | None = None, *, max_queue: int = DEFAULT_MAX_QUEUE, threads: int = 1) -> None:
        self.model = model or os.environ.get("SWITCHBOARD_WHISPER_MODEL") or DEFAULT_MODEL
        self.max_queue = max_queue
        self.threads = threads
        self._proc: Any = None
        self._conn: Connection | None = None
        self._io = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="whisper")
        self._waiting: deque[tuple[np.ndarray, asyncio.Future[WhisperResult]]] = deque()
        self._busy = False
        self._wake: asyncio.Event | None = None
        self._pump_task: asyncio.Task[None] | None = None
        self._starting: asyncio.Task[None] | None = None
        self._closed = False
        self.decodes = 0
        self.shed = 0
        self.decode_seconds: deque[float] = deque(maxlen=200)  # recent decode wall times

    # ---- state for load shedding and metrics
    @property
    def depth(self) -> int:
        """Utterances waiting or being decoded."""
        return len(self._waiting) + (1 if self._busy else 0)

    @property
    def worst_wait_s(self) -> float:
        """The longest an accepted utterance can wait for its transcript at the current decode speed."""
        typical = float(np.median(self.decode_seconds)) if self.decode_seconds else 1.0
        return self.max_queue * typical

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    # ---- lifecycle
    async def start(self) -> None:
        """Start the helper and load the model (idempotent; concurrent callers share one start)."""
        if self._proc is not None and self._proc.is_alive():
            return
        if self._starting is None or self._starting.done() or \
                self._starting.get_loop() is not asyncio.get_running_loop():
            self._starting = asyncio.get_running_loop().create_task(self._start(), name="whisper-start")
        await asyncio.shield(self._starting)

    async def _start(self) -> None:
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_serve, args=(child, self.model, os.getpid(), self.threads), name="whisper",
                           daemon=True)
        proc.start()  # from the event loop's thread: see agents.childproc
        child.close()
        loop = asyncio.get_running_loop()
        try:
            ready = await loop.run_in_executor(self._io, parent.poll, _START_TIMEOUT_S)
            status, detail = await loop.run_in_executor(self._io, parent.recv) if ready else ("error", "timeout")
        except (EOFError, OSError) as exc:
            status, detail = "error", f"the process ended ({exc!r})"
        except asyncio.CancelledError:  # closed while the model loads: nothing to finish, it is killed
            _stop(proc, parent, graceful=False)  # its end wakes the pipe thread's poll
            raise
        if status != "ok":
            _stop(proc, parent)
            raise ProviderError(f"cannot start Whisper ({self.model}): {detail}", retryable=False,
                                reason="model_load_failed", provider="whisper")
        self._proc, self._conn = proc, parent
        log.info("Whisper %s ready in process %s", self.model, proc.pid)

    async def aclose(self) -> None:
        self._closed = True
        starting = self._starting  # shielded from its callers' cancellation: a start still loading the model
        if starting is not None and not starting.done() and starting.get_loop() is asyncio.get_running_loop():
            starting.cancel()  # would otherwise finish after the close and leave its process running
            with contextlib.suppress(asyncio.CancelledError, ProviderError):
                await starting
        if self._pump_task is not None and self._pump_task.get_loop() is asyncio.get_running_loop():
            self._pump_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump_task
        while self._waiting:
            _, fut = self._waiting.popleft()
            if not fut.done():
                fut.set_exception(ProviderError("the recogniser is closing", retryable=True, reason="closed",
                                                provider="whisper"))
        self.terminate()

    def terminate(self) -> None:
        """(sync) end the helper process and the pipe thread; pending work is dropped."""
        self._closed = True
        if self._proc is not None:
            _stop(self._proc, self._conn)
            self._proc = self._conn = None
        self._io.shutdown(wait=False, cancel_futures=True)

    # ---- work
    async def transcribe(self, pcm16k: np.ndarray) -> WhisperResult:
        """Decode one utterance (16 kHz int16); raises WhisperOverloaded at once when the queue is full."""
        if self._closed:
            raise ProviderError("the recogniser is closed", retryable=False, reason="closed", provider="whisper")
        if self.depth >= self.max_queue:
            self.shed += 1
            raise WhisperOverloaded(self.depth)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[WhisperResult] = loop.create_future()
        self._waiting.append((np.ascontiguousarray(pcm16k, np.int16), fut))
        if self._pump_task is None or self._pump_task.done() or self._pump_task.get_loop() is not loop:
            self._wake = asyncio.Event()
            self._pump_task = loop.create_task(self._pump(), name="whisper-queue")
        assert self._wake is not None
        self._wake.set()
        return await fut

    async def _pump(self) -> None:
        """The queue's one consumer: one utterance at a time through the child."""
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self._waiting:
                self._wake.clear()
                await self._wake.wait()
                continue
            pcm, fut = self._waiting.popleft()
            if fut.done():  # its stream went away while it waited
                continue
            self._busy = True
            try:
                await self.start()
                result = await loop.run_in_executor(self._io, self._roundtrip, pcm.tobytes())
                self.decodes += 1
                self.decode_seconds.append(result.decode_s)
                if not fut.done():
                    fut.set_result(result)
            except asyncio.CancelledError:
                if not fut.done():
                    fut.cancel()
                raise
            except Exception as exc:
                err = exc if isinstance(exc, ProviderError) else ProviderError(
                    f"Whisper failed: {exc}", retryable=True, reason="decode_failed", provider="whisper")
                if not fut.done():
                    fut.set_exception(err)
            finally:
                self._busy = False

    def _roundtrip(self, data: bytes) -> WhisperResult:
        """(executor thread) send one utterance, wait for its result; a dead or hung child is replaced."""
        conn, proc = self._conn, self._proc
        if conn is None or proc is None:
            raise ProviderError("the Whisper helper is not running", retryable=True, reason="decode_failed",
                                provider="whisper")
        try:
            conn.send_bytes(data)
            if not conn.poll(_DECODE_TIMEOUT_S):
                raise TimeoutError(f"no result in {_DECODE_TIMEOUT_S:.0f} s")
            status, result = conn.recv()
        except (EOFError, OSError, TimeoutError) as exc:
            self._proc = self._conn = None  # the next utterance starts a new helper
            _stop(proc, conn)
            raise ProviderError(f"Whisper process {proc.pid} failed: {exc}", retryable=True,
                                reason="decode_failed", provider="whisper") from exc
        if status != "ok":
            raise ProviderError(f"Whisper failed: {result}", retryable=True, reason="decode_failed",
                                provider="whisper")
        return result


def _stop(proc: Any, conn: Connection | None, *, graceful: bool = True) -> None:
    if graceful:  # asked to end (an empty message), given a second
        if conn is not None:
            with contextlib.suppress(OSError, BrokenPipeError):
                conn.send_bytes(b"")
        proc.join(1.0)
    if proc.is_alive():
        proc.kill()
        proc.join(1.0)
    if conn is not None:
        conn.close()
