"""The vector store: chromadb, embedded under the data directory (``PersistentClient``), or a chroma server
when ``CHROMA_URL`` is set (``HttpClient``).

One collection per knowledge base, named ``kb-<uuid hex>``, created with cosine distance and with the
owning organization in its metadata; every read checks that owner, so a collection can only ever answer
for its own organization. Chunk ids are ``<source id>:<n>`` and each chunk's metadata names its source,
so a source's chunks are replaced or deleted together.

chromadb only works offline with an embedding function of its own choosing disabled, so the collections
carry ours (registered under a fixed name, passed on every open). Vectors are computed by the caller
(batched, in an executor) and handed over ready-made.

Everything here blocks: the knowledge service runs it in executors.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import numpy as np

log = logging.getLogger(__name__)

ADD_BATCH = 1000  # under chromadb's max batch size


@dataclass(frozen=True)
class Match:
    chunk_id: str
    source_id: UUID
    chunk_index: int
    text: str
    similarity: float  # cosine similarity, -1..1 (1 - chromadb's cosine distance)


def collection_name(kb_id: UUID) -> str:
    return f"kb-{kb_id.hex}"


def _embedding_function() -> Any:
    """Our embedding function as chromadb wants it (created once; registered under a fixed name)."""
    global _EF
    if _EF is None:
        from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
        from chromadb.utils.embedding_functions import register_embedding_function

        from .embedder import get_embedder

        @register_embedding_function
        class SwitchboardMiniLM(EmbeddingFunction[Documents]):
            def __init__(self) -> None:
                pass

            def __call__(self, input: Documents) -> Embeddings:
                return list(get_embedder().embed(list(input)))

            @staticmethod
            def name() -> str:
                return "switchboard-minilm-l6-v2"

            def default_space(self) -> Any:
                return "cosine"

            def supported_spaces(self) -> Any:
                return ["cosine"]

            @staticmethod
            def build_from_config(config: dict[str, Any]) -> SwitchboardMiniLM:
                return SwitchboardMiniLM()

            def get_config(self) -> dict[str, Any]:
                return {}

        _EF = SwitchboardMiniLM()
    return _EF


_EF: Any = None


class VectorStore:
    def __init__(self, path: Path | None = None, url: str | None = None) -> None:
        if path is None and url is None:
            raise ValueError("a vector store needs a directory or a chroma server URL")
        self.path = path
        self.url = url
        self._client: Any = None
        self._lock = threading.Lock()
        self._dropped: set[UUID] = set()  # collections deleted by this process: late writes must not revive them

    @property
    def where(self) -> str:
        return self.url or str(self.path)

    def client(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._connect()
        return self._client

    def _connect(self) -> Any:
        import chromadb
        from chromadb.config import Settings

        settings = Settings(anonymized_telemetry=False, allow_reset=False)
        if self.url:
            parts = urlsplit(self.url)
            return chromadb.HttpClient(host=parts.hostname or "localhost",
                                       port=parts.port or (443 if parts.scheme == "https" else 8000),
                                       ssl=parts.scheme == "https", settings=settings)
        assert self.path is not None
        self.path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(self.path), settings=settings)

    def ping(self) -> bool:
        try:
            self.client().heartbeat()
            return True
        except Exception:
            return False

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None and hasattr(client, "close"):
            try:
                client.close()
            except Exception:  # pragma: no cover - best effort at shutdown
                log.debug("closing the chroma client failed", exc_info=True)

    # -- collections -------------------------------------------------------------------------------------
    def _open(self, org_id: UUID, kb_id: UUID, *, create: bool) -> Any | None:
        """The knowledge base's collection, if it exists and belongs to ``org_id``."""
        name = collection_name(kb_id)
        client = self.client()
        if create:
            if kb_id in self._dropped:
                return None
            collection = client.get_or_create_collection(
                name, metadata={"org_id": str(org_id), "kb_id": str(kb_id)},
                configuration={"hnsw": {"space": "cosine"}}, embedding_function=_embedding_function())
        else:
            try:
                collection = client.get_collection(name, embedding_function=_embedding_function())
            except Exception as exc:  # NotFoundError / ValueError, depending on the client
                if "does not exist" in str(exc) or "not found" in str(exc).lower():
                    return None
                raise
        if (collection.metadata or {}).get("org_id") != str(org_id):
            log.warning("collection %s does not belong to organization %s", name, org_id)
            return None
        return collection

    def replace_source(self, org_id: UUID, kb_id: UUID, source_id: UUID, chunks: Sequence[str],
                       embeddings: np.ndarray, metadatas: Sequence[dict[str, Any]] | None = None) -> bool:
        """The source's chunks become exactly these; False if the knowledge base is gone."""
        collection = self._open(org_id, kb_id, create=True)
        if collection is None:
            return False
        collection.delete(where={"source_id": str(source_id)})
        ids = [f"{source_id}:{i}" for i in range(len(chunks))]
        metas = [{"source_id": str(source_id), "chunk_index": i, **((metadatas or [{}] * len(chunks))[i])}
                 for i in range(len(chunks))]
        for start in range(0, len(ids), ADD_BATCH):
            end = start + ADD_BATCH
            collection.add(ids=ids[start:end], documents=list(chunks[start:end]),
                           embeddings=embeddings[start:end], metadatas=metas[start:end])
        return True

    def delete_source(self, org_id: UUID, kb_id: UUID, source_id: UUID) -> None:
        collection = self._open(org_id, kb_id, create=False)
        if collection is not None:
            collection.delete(where={"source_id": str(source_id)})

    def drop(self, org_id: UUID, kb_id: UUID) -> None:
        self._dropped.add(kb_id)
        if self._open(org_id, kb_id, create=False) is not None:
            self.client().delete_collection(collection_name(kb_id))

    def count(self, org_id: UUID, kb_id: UUID, source_id: UUID | None = None) -> int:
        collection = self._open(org_id, kb_id, create=False)
        if collection is None:
            return 0
        if source_id is None:
            return collection.count()
        return len(collection.get(where={"source_id": str(source_id)}, include=[])["ids"])

    def query(self, org_id: UUID, kb_id: UUID, embedding: np.ndarray, top_k: int) -> list[Match]:
        collection = self._open(org_id, kb_id, create=False)
        if collection is None:
            return []
        n = collection.count()
        if n == 0:
            return []
        found = collection.query(query_embeddings=[embedding], n_results=min(top_k, n),
                                 include=["documents", "metadatas", "distances"])
        out = []
        for chunk_id, doc, meta, dist in zip(found["ids"][0], found["documents"][0], found["metadatas"][0],
                                             found["distances"][0], strict=True):
            if not meta or "source_id" not in meta:
                continue  # not written by us
            out.append(Match(chunk_id, UUID(str(meta["source_id"])), int(meta.get("chunk_index", 0)), doc or "",
                             round(1.0 - float(dist), 4)))
        return out
