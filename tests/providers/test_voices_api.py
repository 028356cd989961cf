"""GET /voices lists a cloud provider's voices only to organizations holding that provider's key; agents may
name cloud voices."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from store import orgs
from store import provider_keys as provider_key_store
from switchboard.config import Settings
from switchboard.server import init_app


@pytest.fixture
async def api(aiohttp_client: Any, tmp_path: Path, database_url: str, db: Any) -> Any:
    settings = Settings(data_dir=tmp_path, database_url=database_url, secret_key="test-secret", api_port=8080)
    client = await aiohttp_client(init_app(settings, settings.database_url, bootstrap=False))

    async def tenant(name: str) -> dict[str, str]:
        org, _ = await orgs.get_or_create_org(db, name)
        _, key = await orgs.create_api_key(db, org["id"], "test")
        return {"Authorization": f"Bearer {key}"}

    async def call(method: str, path: str, headers: dict[str, str], **kw: Any) -> tuple[int, Any]:
        resp = await client.request(method, "/api/v1" + path, headers=headers, **kw)
        return resp.status, await resp.json() if resp.content_type == "application/json" else None

    return tenant, call


async def test_cloud_voices_follow_the_organization_keys(api: Any, db: Any) -> None:
    tenant, call = api
    acme, globex = await tenant("acme"), await tenant("globex")
    _, body = await call("GET", "/voices", acme)
    assert {v["provider"] for v in body["data"]} == {"flite", "espeak"}
    status, _ = await call("GET", "/voices/openai-nova", acme)
    assert status == 404

    status, _ = await call("POST", "/provider-keys", acme,
                           json={"provider_type": "tts", "provider_name": "openai", "api_key": "sk-acme"})
    assert status == 201
    _, body = await call("GET", "/voices", acme)
    assert {v["provider"] for v in body["data"]} == {"flite", "espeak", "openai"}
    _, body = await call("GET", "/voices?provider=openai", acme)
    assert {v["voice_id"] for v in body["data"]} >= {"openai-alloy", "openai-coral", "openai-nova", "openai-onyx"}
    assert all(v["language"] == "multilingual" for v in body["data"])
    status, body = await call("GET", "/voices/openai-nova", acme)
    assert status == 200 and body["data"]["provider"] == "openai" and set(body["data"]) == {
        "voice_id", "name", "provider", "language", "gender", "description"}
    _, body = await call("GET", "/voices?language=en-US&gender=female", acme)
    assert "openai-nova" in {v["voice_id"] for v in body["data"]}

    # another tenant sees none of them
    _, body = await call("GET", "/voices?provider=openai", globex)
    assert body["data"] == []
    status, _ = await call("GET", "/voices/openai-nova", globex)
    assert status == 404

    org_id = (await orgs.get_or_create_org(db, "acme"))[0]["id"]
    assert await provider_key_store.names(db, org_id) == {"openai"}


async def test_agents_accept_cloud_voices(api: Any) -> None:
    tenant, call = api
    acme = await tenant("acme")
    status, body = await call("POST", "/agents", acme, json={
        "name": "Rachel", "voice_id": "elevenlabs-rachel", "stt": {"provider": "deepgram", "model": "nova-3"},
        "voice_settings": {"stability": 0.5, "similarity_boost": 0.75, "speed": 1.1}})
    assert status == 201, body
    assert body["data"]["voice_id"] == "elevenlabs-rachel" and body["data"]["stt"]["provider"] == "deepgram"
    status, body = await call("POST", "/agents", acme, json={"name": "x", "voice_id": "elevenlabs-nobody"})
    assert status == 422
