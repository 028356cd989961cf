"""Trunks (secrets encrypted, never returned) and numbers (unique server-wide)."""

from __future__ import annotations

import uuid


async def test_trunk_crud_and_password_never_returned(tenant, db):
    payload = {"name": "Carrier", "host": "sip.carrier.example", "port": 5080, "transport": "tcp",
               "username": "acct1", "password": "s3cret-pass", "register": True, "register_expires": 300,
               "number_format": "no_plus", "dial_prefix": "9", "max_concurrent_calls": 10, "calls_per_second": 2,
               "inbound_cidrs": ["203.0.113.7", "198.51.100.0/24"], "codecs": ["PCMA", "PCMU"],
               "rate_per_minute": 0.012}
    status, body = await tenant.post("/trunks", payload)
    assert status == 201, body
    trunk = body["data"]
    assert "password" not in trunk and trunk["has_password"] is True
    assert trunk["register"] is True and trunk["registration_state"] == "unregistered"
    assert trunk["inbound_cidrs"] == ["203.0.113.7/32", "198.51.100.0/24"]
    assert trunk["codecs"] == ["PCMA", "PCMU"] and trunk["rate_per_minute"] == 0.012
    stored = await db.fetchval("SELECT password_enc FROM trunks WHERE id = $1", uuid.UUID(trunk["id"]))
    assert stored and "s3cret-pass" not in stored  # encrypted at rest

    status, body = await tenant.patch(f"/trunks/{trunk['id']}", {"port": 5090, "password": "new-pass"})
    assert status == 200 and body["data"]["port"] == 5090 and body["data"]["username"] == "acct1"
    assert await db.fetchval("SELECT password_enc FROM trunks WHERE id = $1", uuid.UUID(trunk["id"])) != stored

    status, body = await tenant.get(f"/trunks/{trunk['id']}/status")
    assert status == 200
    assert body["data"] == {"trunk_id": trunk["id"], "register": True, "registration_state": "unregistered",
                            "last_error": None, "expires_at": None, "active_calls": 0, "max_concurrent_calls": 10}
    _, listed = await tenant.get("/trunks")
    assert listed["meta"]["total"] == 1
    status, _ = await tenant.delete(f"/trunks/{trunk['id']}")
    assert status == 204
    status, _ = await tenant.get(f"/trunks/{trunk['id']}")
    assert status == 404


async def test_invalid_trunks(tenant):
    cases = [
        ({"host": "h"}, "name"),
        ({"name": "t"}, "host"),
        ({"name": "t", "host": "bad host!"}, "host"),
        ({"name": "t", "host": "h", "port": 70000}, "port"),
        ({"name": "t", "host": "h", "transport": "sctp"}, "transport"),
        ({"name": "t", "host": "h", "inbound_cidrs": ["not-a-cidr"]}, "inbound_cidrs.0"),
        ({"name": "t", "host": "h", "codecs": ["OPUS"]}, "codecs.0"),
        ({"name": "t", "host": "h", "codecs": ["PCMU", "PCMU"]}, "codecs"),
        ({"name": "t", "host": "h", "register": True}, "register"),
        ({"name": "t", "host": "h", "number_format": "weird"}, "number_format"),
        ({"name": "t", "host": "h", "dial_prefix": "abc"}, "dial_prefix"),
        ({"name": "t", "host": "h", "calls_per_second": 0}, "calls_per_second"),
    ]
    for payload, field in cases:
        status, body = await tenant.post("/trunks", payload)
        assert status == 422, (payload, body)
        assert field in body["error"]["fields"], (payload, body)
    _, listed = await tenant.get("/trunks")
    assert listed["meta"]["total"] == 0


async def test_registering_trunk_patch_keeps_credentials_rule(tenant, trunk):
    status, body = await tenant.patch(f"/trunks/{trunk['id']}", {"register": True})
    assert status == 200  # has username and password
    status, body = await tenant.patch(f"/trunks/{trunk['id']}", {"password": None})
    assert status == 422 and "register" in body["error"]["fields"]


async def test_number_crud_normalises_e164(tenant, trunk, agent):
    status, body = await tenant.post("/numbers", {"number": "+1 (863) 990-1708", "trunk_id": trunk["id"],
                                                  "agent_id": agent["id"], "name": "Main line"})
    assert status == 201, body
    number = body["data"]
    assert number["number"] == "+18639901708" and number["status"] == "active"
    status, body = await tenant.patch(f"/numbers/{number['id']}", {"status": "inactive", "agent_id": None})
    assert status == 200 and body["data"]["status"] == "inactive" and body["data"]["agent_id"] is None
    _, listed = await tenant.get(f"/numbers?trunk_id={trunk['id']}&status=inactive")
    assert [n["id"] for n in listed["data"]] == [number["id"]]
    status, body = await tenant.delete(f"/trunks/{trunk['id']}")
    assert status == 409  # the trunk carries a number
    status, _ = await tenant.delete(f"/numbers/{number['id']}")
    assert status == 204
    status, _ = await tenant.delete(f"/trunks/{trunk['id']}")
    assert status == 204


async def test_invalid_numbers(tenant, trunk):
    cases = [
        ({"number": "12345", "trunk_id": trunk["id"]}, "number"),
        ({"number": "+1 555", "trunk_id": trunk["id"]}, "number"),
        ({"number": "+15559876543"}, "trunk_id"),
        ({"number": "+15559876543", "trunk_id": str(uuid.uuid4())}, "trunk_id"),
        ({"number": "+15559876543", "trunk_id": trunk["id"], "agent_id": str(uuid.uuid4())}, "agent_id"),
        ({"number": "+15559876543", "trunk_id": trunk["id"], "status": "sleeping"}, "status"),
    ]
    for payload, field in cases:
        status, body = await tenant.post("/numbers", payload)
        assert status == 422, (payload, body)
        assert field in body["error"]["fields"], (payload, body)


async def test_number_unique_across_the_whole_server(tenant, other, number):
    _, body = await other.post("/trunks", {"name": "theirs", "host": "sip.other.example"}, expect=201)
    status, body = await other.post("/numbers", {"number": "+15559876543", "trunk_id": body["data"]["id"]})
    assert status == 409
    assert "number" in body["error"]["fields"]
    status, body = await tenant.post("/numbers", {"number": "+1-555-987-6543", "trunk_id": number["trunk_id"]})
    assert status == 409


async def test_provider_keys_encrypted_and_masked(tenant, db):
    status, body = await tenant.post("/provider-keys", {"provider_type": "stt", "provider_name": "deepgram",
                                                        "api_key": "dg_supersecretvalue1234", "is_default": True})
    assert status == 201, body
    key = body["data"]
    assert key["api_key"] == "****1234"
    stored = await db.fetchrow("SELECT key_enc FROM provider_keys WHERE id = $1", uuid.UUID(key["id"]))
    assert "supersecret" not in stored["key_enc"]
    status, body = await tenant.post("/provider-keys", {"provider_type": "stt", "provider_name": "openai",
                                                        "api_key": "sk-another-key-9999", "is_default": True})
    assert status == 409 and "is_default" in body["error"]["fields"]
    status, body = await tenant.post("/provider-keys", {"provider_type": "vision", "provider_name": "x", "api_key": "k"})
    assert status == 422 and "provider_type" in body["error"]["fields"]
    _, listed = await tenant.get("/provider-keys")
    assert [k["api_key"] for k in listed["data"]] == ["****1234"]
    assert (await tenant.delete(f"/provider-keys/{key['id']}"))[0] == 204
    assert (await tenant.delete(f"/provider-keys/{key['id']}"))[0] == 404


async def test_api_keys_lifecycle(tenant):
    status, body = await tenant.post("/api-keys", {"name": "ci"})
    assert status == 201
    created = body["data"]
    assert created["key"].startswith("sb_") and created["key"].startswith(created["key_prefix"])
    resp = await tenant.client.get("/api/v1/agents", headers={"Authorization": f"Bearer {created['key']}"})
    assert resp.status == 200
    _, listed = await tenant.get("/api-keys")
    assert listed["meta"]["total"] == 2 and all("key" not in k for k in listed["data"])
    status, body = await tenant.post(f"/api-keys/{created['id']}/regenerate")
    assert status == 200 and body["data"]["key"] != created["key"]
    old = await tenant.client.get("/api/v1/agents", headers={"Authorization": f"Bearer {created['key']}"})
    assert old.status == 401
    new = await tenant.client.get("/api/v1/agents", headers={"Authorization": f"Bearer {body['data']['key']}"})
    assert new.status == 200
    assert (await tenant.delete(f"/api-keys/{created['id']}"))[0] == 204
    own = listed["data"][1]["id"] if listed["data"][0]["id"] == created["id"] else listed["data"][0]["id"]
    status, body = await tenant.delete(f"/api-keys/{own}")
    assert status == 409  # the last key of the organization stays
