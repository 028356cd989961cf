"""Every resource is scoped to its organization: another tenant's id answers 404, never the data."""

from __future__ import annotations


async def test_cross_tenant_access_is_404_everywhere(tenant, other, agent, trunk, number):
    _, call = await tenant.post("/calls", {"to_number": "sip:bob@127.0.0.1", "agent_id": agent["id"]}, expect=201)
    _, pkey = await tenant.post("/provider-keys", {"provider_type": "llm", "provider_name": "openai",
                                                   "api_key": "sk-tenant-secret"}, expect=201)
    _, akey = await tenant.post("/api-keys", {"name": "second"}, expect=201)
    call_id = call["data"]["id"]
    probes = [
        ("GET", f"/agents/{agent['id']}", None), ("PATCH", f"/agents/{agent['id']}", {"name": "stolen"}),
        ("DELETE", f"/agents/{agent['id']}", None),
        ("GET", f"/trunks/{trunk['id']}", None), ("PATCH", f"/trunks/{trunk['id']}", {"port": 1}),
        ("GET", f"/trunks/{trunk['id']}/status", None), ("DELETE", f"/trunks/{trunk['id']}", None),
        ("GET", f"/numbers/{number['id']}", None), ("PATCH", f"/numbers/{number['id']}", {"name": "x"}),
        ("DELETE", f"/numbers/{number['id']}", None),
        ("GET", f"/calls/{call_id}", None), ("DELETE", f"/calls/{call_id}", None),
        ("POST", f"/calls/{call_id}/end", None), ("POST", f"/calls/{call_id}/cancel", None),
        ("GET", f"/calls/{call_id}/transcript", None),
        ("DELETE", f"/provider-keys/{pkey['data']['id']}", None),
        ("DELETE", f"/api-keys/{akey['data']['id']}", None),
        ("POST", f"/api-keys/{akey['data']['id']}/regenerate", None),
    ]
    for method, path, payload in probes:
        status, body = await other.call(method, path, json=payload)
        assert status == 404, (method, path, status, body)
        assert "data" not in body
    for path in ("/agents", "/trunks", "/numbers", "/calls", "/calls/active", "/provider-keys"):
        _, body = await other.get(path)
        assert body["data"] == [] and body["meta"]["total"] == 0, path
    _, body = await other.get("/api-keys")
    assert body["meta"]["total"] == 1  # only its own
    # nothing was changed by the attempts
    _, body = await tenant.get(f"/agents/{agent['id']}")
    assert body["data"]["name"] == "Support"
    _, body = await tenant.get(f"/calls/{call_id}")
    assert body["data"]["status"] == "pending"


async def test_numbers_cannot_point_at_another_tenants_trunk_or_agent(tenant, other, agent, trunk):
    status, body = await other.post("/numbers", {"number": "+15550002222", "trunk_id": trunk["id"]})
    assert status == 422 and "trunk_id" in body["error"]["fields"]
    _, theirs = await other.post("/trunks", {"name": "t", "host": "h.example"}, expect=201)
    status, body = await other.post("/numbers", {"number": "+15550002222", "trunk_id": theirs["data"]["id"],
                                                 "agent_id": agent["id"]})
    assert status == 422 and "agent_id" in body["error"]["fields"]
    status, body = await other.post("/calls", {"to_number": "+15551234567", "agent": {"name": "i"},
                                               "trunk_id": trunk["id"]})
    assert status == 422 and "trunk_id" in body["error"]["fields"]
