"""Fixtures for the platform events: a webhook receiver on loopback, seeded calls, a platform service."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from store import agents as agent_store
from store import calls as call_store
from store import orgs
from switchboard.config import Settings
from switchboard.platform.deliverer import DeliveryPolicy
from switchboard.platform.service import PlatformConfig, PlatformService
from switchboard.server import init_app
from tests.support.loopback_http import serve_on_loopback


@dataclass
class Received:
    method: str
    path: str
    headers: Any
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A webhook endpoint on 127.0.0.1. ``answers`` is a script of statuses (``"hang"``: never answer
    until ``release`` is set); after it runs out, every request gets 200."""

    answers: list[int | str] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _runner: web.AppRunner | None = None

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner, port = await serve_on_loopback(app)
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        self.release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        answer = self.answers.pop(0) if self.answers else 200
        async with self._changed:
            self.received.append(Received(request.method, request.path, request.headers, body))
            self._changed.notify_all()
        if answer == "hang":
            await self.release.wait()
            answer = 200
        return web.Response(status=int(answer), text="ok")

    async def wait_for(self, predicate: Callable[[list[Received]], bool], within: float = 20.0) -> list[Received]:
        async with asyncio.timeout(within):
            async with self._changed:
                await self._changed.wait_for(lambda: predicate(self.received))
        return list(self.received)

    def events(self, name: str) -> list[Received]:
        return [r for r in self.received if r.headers.get("X-Switchboard-Event") == name]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = await Receiver().start()
    yield found
    await found.stop()


@pytest.fixture
def fast_policy() -> DeliveryPolicy:
    return DeliveryPolicy(timeout_seconds=2.0, first_delay_seconds=0.05, max_delay_seconds=0.2, lease_seconds=5.0)


@pytest.fixture
async def platform(db: asyncpg.Pool, database_url: str, fast_policy: DeliveryPolicy
                   ) -> AsyncIterator[Callable[..., Any]]:
    """Start platform services (``await platform(worker=…, policy=…)``); all are stopped at the end."""
    started: list[PlatformService] = []

    async def start(worker: str = "w1", policy: DeliveryPolicy | None = None, allow_private: bool = True,
                    secret_box: Any = None) -> PlatformService:
        service = PlatformService(db, PlatformConfig(dsn=database_url, worker=worker, base_url="http://sb.test",
                                                     allow_private_urls=allow_private, policy=policy or fast_policy,
                                                     secret_box=secret_box))
        await service.start()
        started.append(service)
        return service

    yield start
    for service in started:
        await service.stop()


@dataclass
class Seed:
    org_id: uuid.UUID
    key: str
    agent_id: uuid.UUID

    async def call(self, db: asyncpg.Pool, *, status: str = "pending", **values: Any) -> dict[str, Any]:
        agent = await agent_store.agents.get(db, self.org_id, self.agent_id)
        assert agent is not None
        row = {"direction": "outbound", "status": status, "to_number": "sip:bob@127.0.0.1", "agent_id": self.agent_id,
               "agent_name": agent["name"], "agent_config": agent["config"], **values}
        return (await call_store.create_many(db, self.org_id, [row]))[0]


async def seed(db: asyncpg.Pool, name: str = "acme", agent_config: dict[str, Any] | None = None) -> Seed:
    from api.models.agents import DEFAULTS

    org, _ = await orgs.get_or_create_org(db, name)
    _, key = await orgs.create_api_key(db, org["id"], "test")
    config = {k: v for k, v in DEFAULTS.items() if k not in ("name", "enabled")} | (agent_config or {})
    agent = await agent_store.agents.insert(db, org["id"], {"name": "Support", "enabled": True, "config": config})
    return Seed(org["id"], key, agent["id"])


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(data_dir=tmp_path, database_url=database_url, secret_key="test-secret", api_port=8080,
                    allow_private_urls=True)


@pytest.fixture
async def client(aiohttp_client: Any, settings: Settings, db: asyncpg.Pool) -> TestClient:
    """The API without its own platform service (tests start the ones they need)."""
    return await aiohttp_client(init_app(settings, settings.database_url, bootstrap=False, platform=False))


async def api(client: TestClient, key: str, method: str, path: str, expect: int | None = None,
              **kwargs: Any) -> tuple[int, Any]:
    resp = await client.request(method, "/api/v1" + path, headers={"Authorization": f"Bearer {key}"}, **kwargs)
    body = await resp.json() if resp.content_type == "application/json" else await resp.text()
    if expect is not None:
        assert resp.status == expect, (resp.status, body)
    return resp.status, body
