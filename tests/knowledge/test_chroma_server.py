"""CHROMA_URL: the same vector store against a real chroma server (``chroma run``) on loopback."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from agents.knowledge.service import KnowledgeService
from agents.knowledge.vectors import VectorStore

CHROMA = shutil.which("chroma") or str(Path(sys.executable).parent / "chroma")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def chroma_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    assert Path(CHROMA).exists(), "chromadb installs the chroma command"
    port = _free_port()
    proc = subprocess.Popen([CHROMA, "run", "--path", str(tmp_path_factory.mktemp("chroma-server")),
                             "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not VectorStore(url=url).ping():
            assert proc.poll() is None and time.monotonic() < deadline, "chroma run did not start"
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def _unit(v: list[float]) -> np.ndarray:
    a = np.zeros(384, dtype=np.float32)
    a[: len(v)] = v
    return a / np.linalg.norm(a)


def test_the_server_store_keeps_organizations_apart(chroma_url: str) -> None:
    store = VectorStore(url=chroma_url)
    org, other, kb, source = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    vectors = np.stack([_unit([1, 0]), _unit([0, 1]), _unit([1, 1])])
    assert store.replace_source(org, kb, source, ["east", "north", "north-east"], vectors)
    matches = store.query(org, kb, _unit([1, 0.1]), 2)
    assert [m.text for m in matches] == ["east", "north-east"] and matches[0].similarity > 0.99
    assert store.query(other, kb, _unit([1, 0]), 2) == [] and store.count(other, kb) == 0
    store.delete_source(org, kb, source)
    assert store.count(org, kb) == 0
    store.drop(org, kb)
    assert store.query(org, kb, _unit([1, 0]), 2) == []
    store.close()


def test_chroma_url_selects_the_server(chroma_url: str, tmp_path: Path) -> None:
    service = KnowledgeService.from_env(None, tmp_path, {"CHROMA_URL": chroma_url})  # type: ignore[arg-type]
    assert service.vectors.url == chroma_url and service.vectors.ping()
    assert not (tmp_path / "chroma").exists()
    service.vectors.close()
    embedded = KnowledgeService.from_env(None, tmp_path, {})  # type: ignore[arg-type]
    assert embedded.vectors.url is None and embedded.vectors.path == tmp_path / "chroma"
    assert not embedded.allow_private_urls
    assert KnowledgeService.from_env(None, tmp_path, {"SWITCHBOARD_ALLOW_PRIVATE_URLS": "1"}).allow_private_urls  # type: ignore[arg-type]


async def test_the_server_behind_the_api_and_the_health_check(chroma_url: str, tmp_path: Path, db, database_url,
                                                            embedder, aiohttp_client, monkeypatch) -> None:
    from store import orgs
    from switchboard.config import Settings
    from switchboard.server import init_app

    monkeypatch.setenv("CHROMA_URL", chroma_url)
    settings = Settings(data_dir=tmp_path, database_url=None, secret_key="test")
    client = await aiohttp_client(init_app(settings, database_url, bootstrap=False))
    org, _ = await orgs.get_or_create_org(db, "acme")
    _, key = await orgs.create_api_key(db, org["id"], "t")
    headers = {"Authorization": f"Bearer {key}"}

    health = await (await client.get("/api/v1/health")).json()
    assert health["data"]["checks"]["vector_store"] == "up"
    resp = await client.post("/api/v1/knowledge-bases", headers=headers, json={
        "knowledge_base_name": "Remote", "knowledge_base_texts": [{"title": "Hours", "text": "We open at nine."}]})
    kb = (await resp.json())["data"]
    for _ in range(300):
        kb = (await (await client.get(f"/api/v1/knowledge-bases/{kb['id']}", headers=headers)).json())["data"]
        if kb["status"] != "in_progress":
            break
        await asyncio.sleep(0.05)
    assert kb["status"] == "complete", kb
    body = await (await client.post(f"/api/v1/knowledge-bases/{kb['id']}/query", headers=headers,
                                    json={"query": "when do you open", "threshold": 0.3})).json()
    assert body["data"]["results"][0]["text"] == "We open at nine."
    assert not (tmp_path / "chroma").exists()  # nothing embedded

