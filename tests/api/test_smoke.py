async def test_health_without_auth(client):
    resp = await client.get("/api/v1/health")
    assert resp.status == 200
    body = await resp.json()
    assert body["data"]["status"] == "healthy"
    assert body["data"]["checks"]["database"] == "up"
    assert body["meta"]["request_id"]


async def test_agent_roundtrip(tenant):
    status, body = await tenant.post("/agents", {"agent_name": "Sales", "starting_message": "Hello"})
    assert status == 201, body
    assert body["data"]["name"] == "Sales"
    assert body["data"]["begin_message"] == "Hello"
