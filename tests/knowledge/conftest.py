"""Knowledge fixtures: the embedding model loaded once per session, a chroma store per test, and a
running knowledge service on the test database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from agents.knowledge.embedder import EmbeddingProcess, embedding_process
from agents.knowledge.fetch import FetchLimits
from agents.knowledge.service import KnowledgeService
from agents.knowledge.vectors import VectorStore
from store import orgs
from tests.support.loopback_http import serve_on_loopback


@pytest.fixture(scope="session")
def embedder() -> EmbeddingProcess:
    """The embedding child process, its model loaded once for the whole session (~5-10 s)."""
    e = embedding_process()
    e.load_blocking()
    return e


@pytest.fixture
def vectors(tmp_path: Path) -> Iterator[VectorStore]:
    store = VectorStore(path=tmp_path / "chroma")
    yield store
    store.close()


@pytest.fixture
async def org(db) -> Any:
    record, _ = await orgs.get_or_create_org(db, "acme")
    return record["id"]


@pytest.fixture
async def other_org(db) -> Any:
    record, _ = await orgs.get_or_create_org(db, "globex")
    return record["id"]


def make_service(db, vectors: VectorStore, **kwargs: Any) -> KnowledgeService:
    kwargs.setdefault("fetch_limits", FetchLimits(max_bytes=200_000, timeout_seconds=3.0, max_redirects=3))
    return KnowledgeService(db, vectors, **kwargs)


@pytest.fixture
async def service(db, vectors: VectorStore, embedder: EmbeddingProcess) -> AsyncIterator[KnowledgeService]:
    svc = make_service(db, vectors)
    await svc.start()
    yield svc
    await svc.stop()


class Site:
    """A small web server on loopback whose pages the tests change as they go."""

    def __init__(self) -> None:
        self.pages: dict[str, tuple[str, str]] = {}  # path → (content type, body)
        self.hits: list[str] = []
        self.port = 0
        self.app = web.Application()
        self.app.router.add_route("GET", "/{tail:.*}", self._serve)
        self.extra: dict[str, Any] = {}  # path → handler
        self.closing = asyncio.Event()  # slow handlers wait on it, so that teardown is quick

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base + path

    def html(self, path: str, title: str, *paragraphs: str) -> str:
        body = "".join(f"<p>{p}</p>" for p in paragraphs)
        self.pages[path] = ("text/html", f"<html><head><title>{title}</title></head><body><nav>Home | About | "
                                         f"Contact</nav><article><h1>{title}</h1>{body}</article>"
                                         f"<footer>Copyright 2025</footer></body></html>")
        return self.url(path)

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        self.hits.append(request.path)
        if request.path in self.extra:
            return await self.extra[request.path](request)
        if request.path not in self.pages:
            return web.Response(status=404, text="not found")
        content_type, body = self.pages[request.path]
        return web.Response(text=body, content_type=content_type)


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    s = Site()
    runner, s.port = await serve_on_loopback(s.app)
    yield s
    s.closing.set()
    await runner.cleanup()
