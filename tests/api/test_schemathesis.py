"""Property-based run of schemathesis against the served OpenAPI document: no server error, and no
response that breaks the schema (status codes, content types and bodies as documented)."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, settings
from schemathesis import checks

from store import orgs
from store.db import create_pool
from switchboard.config import Settings
from switchboard.server import init_app


class LiveServer:
    """The real server on a loopback port, in its own thread and event loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ready = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.key = ""
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        self.ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.runner.cleanup())

    async def _start(self) -> None:
        pool = await create_pool(self.settings.database_url, max_size=1)
        org, _ = await orgs.get_or_create_org(pool, "schemathesis")
        _, self.key = await orgs.create_api_key(pool, org["id"], "fuzz")
        await pool.close()
        self.runner = web.AppRunner(init_app(self.settings, self.settings.database_url, bootstrap=False))
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.settings.api_port).start()

    def __enter__(self) -> LiveServer:
        self.thread.start()
        assert self.ready.wait(30)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def live(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    port = _free_port()
    settings = Settings(data_dir=Path(tmp_path_factory.mktemp("fuzz")), database_url=database_url,
                        secret_key="fuzz", api_host="127.0.0.1", api_port=port, rate_limit_per_minute=10**9)
    with LiveServer(settings) as server:
        yield server


@pytest.fixture(scope="module")
def api_schema(live: LiveServer):
    base = f"http://127.0.0.1:{live.settings.api_port}"
    spec = requests.get(f"{base}/api/v1/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(spec)
    schema.config.update(base_url=base)
    return schema


schema = schemathesis.pytest.from_fixture("api_schema")
CHECKS = [checks.not_a_server_error, checks.status_code_conformance, checks.content_type_conformance,
          checks.response_schema_conformance]


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case, live: LiveServer) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {live.key}"}, checks=CHECKS, timeout=10)
