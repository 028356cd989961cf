"""The knowledge service: ingestion in the background, queries, deletion, and the 12-hourly refresh of URL
sources. One per process; the server starts and stops it (switchboard.server).

Ingestion of a source: fetch (URL) → chunk → embed in batches → replace the source's chunks in its
knowledge base's collection → mark the source complete (or error, with the reason) → recompute the
knowledge base's status. Each source is one named task the service holds; deleting a source or a
knowledge base cancels its tasks. CPU work (chunking, embedding, HTML extraction, chroma reads) runs on a
small thread pool, every chroma write on one dedicated thread: writes to a collection happen in the order
they were asked for, so a deletion queued after an in-flight write always wins.

Sources left unfinished by a stopped process are picked up again at start.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import numpy as np

from store import knowledge as kb_store
from store.types import DB

from .. import netguard
from .chunking import ChunkConfig, chunk_text
from .embedder import BATCH_SIZE, EmbeddingProcess, embedding_process
from .fetch import FetchError, FetchLimits, fetch_page
from .vectors import Match, VectorStore

log = logging.getLogger(__name__)
T = TypeVar("T")

REFRESH_HOURS = 12.0


class IngestError(Exception):
    """A source cannot be ingested; the message is the reason shown on it."""


@dataclass(frozen=True)
class Hit:
    kb_id: UUID
    match: Match


class EmbedBatcher:
    """Gathers the texts that ingestion tasks want embedded into batches of up to ``max_batch`` (many small
    sources cost one model call, not one each), run one after another by a single worker task."""

    def __init__(self, run: Callable[[list[str]], Awaitable[np.ndarray]], max_batch: int = BATCH_SIZE) -> None:
        self._run = run
        self._max = max_batch
        self._queue: list[tuple[list[str], asyncio.Future[np.ndarray]]] = []
        self._wake = asyncio.Event()

    async def embed(self, texts: list[str]) -> np.ndarray:
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._queue.append((texts, future))
        self._wake.set()
        return await future

    async def run(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._queue:
                    await self._one_batch()
        finally:
            for _texts, future in self._queue:
                future.cancel()
            self._queue.clear()

    async def _one_batch(self) -> None:
        batch: list[tuple[list[str], asyncio.Future[np.ndarray]]] = []
        size = 0
        while self._queue and (not batch or size + len(self._queue[0][0]) <= self._max):
            texts, future = self._queue.pop(0)
            if not future.done():  # its caller gave up
                batch.append((texts, future))
                size += len(texts)
        if not batch:
            return
        try:
            vectors = await self._run([t for texts, _ in batch for t in texts])
        except Exception as exc:
            for _texts, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        start = 0
        for texts, future in batch:
            if not future.done():
                future.set_result(vectors[start:start + len(texts)])
            start += len(texts)


class KnowledgeService:
    def __init__(self, db: DB, vectors: VectorStore, *, allow_private_urls: bool = False,
                 fetch_limits: FetchLimits | None = None, chunking: ChunkConfig | None = None,
                 refresh_hours: float = REFRESH_HOURS, refresh_check_seconds: float = 300.0,
                 max_parallel_sources: int = 4, embedder: EmbeddingProcess | None = None) -> None:
        self.db = db
        self.vectors = vectors
        self.allow_private_urls = allow_private_urls
        self.fetch_limits = fetch_limits or FetchLimits()
        self.chunking = chunking or ChunkConfig()
        self.refresh_hours = refresh_hours
        self.refresh_check_seconds = refresh_check_seconds
        self.embedder = embedder or embedding_process()
        self._cpu = ThreadPoolExecutor(max_workers=2, thread_name_prefix="knowledge-cpu")
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="knowledge-write")
        self._slots = asyncio.Semaphore(max_parallel_sources)
        self._tasks: dict[UUID, asyncio.Task[None]] = {}  # source id → its ingestion
        self._kb_of: dict[UUID, UUID] = {}  # source id → knowledge base id, for the tasks held
        self._background: set[asyncio.Task[Any]] = set()
        self._batcher = EmbedBatcher(self.embed)
        self._closed = False
        self.vector_store_up = True  # a chroma server's last heartbeat answered (always true when embedded)

    @classmethod
    def from_env(cls, db: DB, data_dir: Path, env: dict[str, str] | None = None) -> KnowledgeService:
        """CHROMA_URL (a chroma server) or chromadb embedded under ``data_dir/chroma``;
        SWITCHBOARD_ALLOW_PRIVATE_URLS=1 lets URL sources reach private addresses."""
        env = dict(os.environ if env is None else env)
        url = env.get("CHROMA_URL") or None
        vectors = VectorStore(url=url) if url else VectorStore(path=data_dir / "chroma")
        return cls(db, vectors, allow_private_urls=netguard.allow_private_from_env(env))

    # -- life cycle -------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Resume unfinished ingestion and start the refresh scheduler. When knowledge bases exist, the
        vector store and the embedding model are loaded in the background now, so that a caller's first
        question does not wait for them; otherwise they load on first use."""
        if await kb_store.any_exist(self.db):
            self._spawn(self._warm(), "knowledge-warm")
        for source in await kb_store.unfinished_sources(self.db):
            self.schedule(source["org_id"], source["kb_id"], source["id"])
        self._spawn(self._refresh_loop(), "knowledge-refresh")
        self._spawn(self._batcher.run(), "knowledge-embed-batcher")
        if self.vectors.url:
            self._spawn(self._watch_server(), "knowledge-chroma-heartbeat")

    async def _watch_server(self, every: float = 15.0) -> None:
        """A chroma server is a dependency: its heartbeat feeds the health check."""
        while True:
            up = await self._cpu_run(self.vectors.ping)
            if up != self.vector_store_up:
                (log.info if up else log.warning)("chroma server %s is %s", self.vectors.url, "up" if up else "down")
            self.vector_store_up = up
            await asyncio.sleep(every)

    async def _warm(self) -> None:
        try:
            await self._cpu_run(self.vectors.client)
            seconds = await self.embedder.load()
            if seconds:
                log.info("knowledge: embedding model ready in %.1f s", seconds)
        except Exception:
            log.exception("knowledge: loading the vector store or the embedding model failed")

    async def stop(self) -> None:
        self._closed = True
        tasks = [*self._tasks.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        tasks = [*self._background]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._shutdown_threads)

    def _shutdown_threads(self) -> None:
        self._cpu.shutdown(wait=True, cancel_futures=True)
        self._writer.shutdown(wait=True, cancel_futures=True)
        self.vectors.close()

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def _cpu_run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._cpu, fn, *args)

    async def _write(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._writer, fn, *args)

    @property
    def pending(self) -> int:
        return len(self._tasks)

    async def idle(self) -> None:
        """Wait until no ingestion is running (tests, benchmarks)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    # -- ingestion --------------------------------------------------------------------------------------
    def schedule(self, org_id: UUID, kb_id: UUID, source_id: UUID, *, refresh: bool = False) -> None:
        if self._closed or source_id in self._tasks:
            return
        task = asyncio.get_running_loop().create_task(self._ingest(org_id, kb_id, source_id, refresh=refresh),
                                                      name=f"knowledge-ingest-{source_id}")
        self._tasks[source_id] = task
        self._kb_of[source_id] = kb_id

        def done(t: asyncio.Task[None]) -> None:
            if self._tasks.get(source_id) is t:
                del self._tasks[source_id]
                self._kb_of.pop(source_id, None)

        task.add_done_callback(done)

    async def _ingest(self, org_id: UUID, kb_id: UUID, source_id: UUID, *, refresh: bool) -> None:
        try:
            await self._ingest_one(org_id, kb_id, source_id, refresh=refresh)
        except asyncio.CancelledError:
            raise
        except Exception:  # the database went away: the source stays unfinished and resumes at next start
            log.exception("knowledge source %s: ingestion could not record its outcome", source_id)

    async def _ingest_one(self, org_id: UUID, kb_id: UUID, source_id: UUID, *, refresh: bool) -> None:
        async with self._slots:
            source = await kb_store.start_source(self.db, source_id)
            if source is None:
                return  # deleted meanwhile
            await kb_store.refresh_status(self.db, kb_id)
            refresh_hours = self.refresh_hours if source["type"] == "url" else None
            t0 = time.perf_counter()
            try:
                chunks = await self._ingest_source(org_id, kb_id, source, refresh=refresh)
            except (FetchError, IngestError) as exc:
                log.info("knowledge source %s failed: %s", source_id, exc)
                await kb_store.source_failed(self.db, source_id, str(exc), refresh_hours=refresh_hours)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("knowledge source %s: ingestion failed", source_id)
                await kb_store.source_failed(self.db, source_id, "the source could not be processed (a server "
                                             "problem; the operator's log has the details)",
                                             refresh_hours=refresh_hours)
            else:
                log.info("knowledge source %s: %d chunks in %.2f s", source_id, chunks, time.perf_counter() - t0)
            await kb_store.refresh_status(self.db, kb_id)

    async def _ingest_source(self, org_id: UUID, kb_id: UUID, source: dict[str, Any], *, refresh: bool) -> int:
        title = source["title"] or None
        if source["type"] == "url":
            page = await fetch_page(source["url"], allow_private=self.allow_private_urls, limits=self.fetch_limits,
                                    run=self._cpu_run)
            text, fetched_title = page.text, page.title or None
        else:
            text, fetched_title = source["content"] or "", None
        digest = hashlib.sha256(text.encode()).hexdigest()
        refresh_hours = self.refresh_hours if source["type"] == "url" else None
        if refresh and digest == source["content_hash"] and source["chunk_count"]:
            await kb_store.source_done(self.db, source["id"], chunk_count=source["chunk_count"], content_hash=digest,
                                       title=fetched_title, fetched=True, refresh_hours=refresh_hours)
            return source["chunk_count"]
        chunks = await self._cpu_run(chunk_text, text, self.chunking)
        if not chunks:
            raise IngestError("the source has no text to index")
        heading = title or fetched_title
        inputs = [f"{heading}: {c}" if heading else c for c in chunks]  # the title helps the match
        vectors = []
        for start in range(0, len(inputs), BATCH_SIZE):  # batch by batch: queries get the threads in between
            vectors.append(await self._batcher.embed(inputs[start:start + BATCH_SIZE]))
        embeddings = np.concatenate(vectors)
        metadatas = [{"title": heading or ""}] * len(chunks)
        if not await self._write(self.vectors.replace_source, org_id, kb_id, source["id"], chunks, embeddings,
                                 metadatas):
            return 0  # the knowledge base was deleted meanwhile
        await kb_store.source_done(self.db, source["id"], chunk_count=len(chunks), content_hash=digest,
                                   title=fetched_title, fetched=source["type"] == "url", refresh_hours=refresh_hours)
        return len(chunks)

    # -- refresh ----------------------------------------------------------------------------------------
    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_check_seconds)
            try:
                await self.refresh_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("knowledge refresh: claiming due sources failed")

    async def refresh_due(self) -> int:
        """Re-fetch the URL sources of auto-refreshing knowledge bases whose refresh is due (unchanged
        pages are not embedded again). Returns how many were scheduled."""
        claimed = await kb_store.claim_due_refreshes(self.db, refresh_hours=self.refresh_hours)
        for source in claimed:
            self.schedule(source["org_id"], source["kb_id"], source["id"], refresh=True)
        return len(claimed)

    # -- deletion ---------------------------------------------------------------------------------------
    async def _cancel(self, source_ids: Sequence[UUID]) -> None:
        tasks = [self._tasks[s] for s in source_ids if s in self._tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def forget_source(self, org_id: UUID, kb_id: UUID, source_id: UUID) -> None:
        """After the source's row is deleted: stop its ingestion and remove its chunks."""
        await self._cancel([source_id])
        await self._write(self.vectors.delete_source, org_id, kb_id, source_id)

    async def forget_kb(self, org_id: UUID, kb_id: UUID) -> None:
        """After the knowledge base's row is deleted: stop its ingestion and drop its collection."""
        await self._cancel([s for s, k in list(self._kb_of.items()) if k == kb_id])
        await self._write(self.vectors.drop, org_id, kb_id)

    # -- queries ----------------------------------------------------------------------------------------
    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        return await self.embedder.embed(list(texts))

    async def search(self, org_id: UUID, kb_ids: Sequence[UUID], query: str, *, top_k: int = 5,
                     threshold: float = 0.0, embedding: np.ndarray | None = None) -> list[Hit]:
        """The ``top_k`` chunks most similar to ``query`` over these knowledge bases (of ``org_id`` only),
        best first, whose cosine similarity is at least ``threshold``."""
        if not kb_ids or not query.strip():
            return []
        if embedding is None:
            embedding = (await self.embed([query]))[0]
        found = await asyncio.gather(*(self._cpu_run(self.vectors.query, org_id, kb_id, embedding, top_k)
                                       for kb_id in kb_ids))
        hits = [Hit(kb_id, m) for kb_id, matches in zip(kb_ids, found, strict=True) for m in matches
                if m.similarity >= threshold]
        hits.sort(key=lambda h: h.match.similarity, reverse=True)
        return hits[:top_k]

    def answerer(self, org_id: UUID, kb_ids: Sequence[UUID], **kwargs: Any) -> Answerer:
        from .answer import RetrievalAnswerer

        return RetrievalAnswerer(self, org_id, list(kb_ids), **kwargs)


Answerer = Callable[[str], Awaitable[str | None]]
