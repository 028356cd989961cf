"""The real API application on a real database, and helpers to call it as a tenant."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from store import orgs
from switchboard.config import Settings
from switchboard.server import init_app


@dataclass
class Tenant:
    client: TestClient
    key: str
    org_id: Any

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    async def call(self, method: str, path: str, *, expect: int | None = None, **kwargs: Any) -> tuple[int, Any]:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        resp = await self.client.request(method, "/api/v1" + path, headers=headers, **kwargs)
        body = await resp.json() if resp.content_type == "application/json" else await resp.read()
        if expect is not None:
            assert resp.status == expect, (resp.status, body)
        return resp.status, body

    async def get(self, path: str, **kw: Any) -> tuple[int, Any]:
        return await self.call("GET", path, **kw)

    async def post(self, path: str, json: Any = None, **kw: Any) -> tuple[int, Any]:
        return await self.call("POST", path, json=json, **kw)

    async def patch(self, path: str, json: Any = None, **kw: Any) -> tuple[int, Any]:
        return await self.call("PATCH", path, json=json, **kw)

    async def delete(self, path: str, **kw: Any) -> tuple[int, Any]:
        return await self.call("DELETE", path, **kw)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(data_dir=tmp_path, database_url=database_url, secret_key="test-secret", api_port=8080)


@pytest.fixture
async def client(aiohttp_client, settings: Settings, db) -> TestClient:
    app = init_app(settings, settings.database_url, bootstrap=False)
    return await aiohttp_client(app)


async def make_tenant(client: TestClient, db, name: str) -> Tenant:
    org, _ = await orgs.get_or_create_org(db, name)
    _, key = await orgs.create_api_key(db, org["id"], "test")
    return Tenant(client, key, org["id"])


@pytest.fixture
async def tenant(client: TestClient, db) -> Tenant:
    return await make_tenant(client, db, "acme")


@pytest.fixture
async def other(client: TestClient, db) -> Tenant:
    return await make_tenant(client, db, "globex")


@pytest.fixture
async def trunk(tenant: Tenant) -> dict[str, Any]:
    _, body = await tenant.post("/trunks", {"name": "carrier", "host": "sip.example.com", "username": "u",
                                            "password": "p"}, expect=201)
    return body["data"]


@pytest.fixture
async def agent(tenant: Tenant) -> dict[str, Any]:
    _, body = await tenant.post("/agents", {"name": "Support", "begin_message": "Hi!"}, expect=201)
    return body["data"]


@pytest.fixture
async def number(tenant: Tenant, trunk: dict[str, Any], agent: dict[str, Any]) -> dict[str, Any]:
    _, body = await tenant.post("/numbers", {"number": "+1 (555) 987-6543", "trunk_id": trunk["id"],
                                             "agent_id": agent["id"]}, expect=201)
    return body["data"]
