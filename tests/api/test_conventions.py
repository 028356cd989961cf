"""The conventions every endpoint follows: auth, envelopes, request ids, errors, limits, paging."""

from __future__ import annotations

import time

from api.ratelimit import RateLimiter


async def test_missing_and_bad_keys_are_401_with_error_envelope(client):
    for headers in ({}, {"Authorization": "Bearer nope"}, {"X-API-Key": "sb_wrong"}, {"Authorization": "Basic x"}):
        resp = await client.get("/api/v1/agents", headers=headers)
        assert resp.status == 401
        body = await resp.json()
        assert body["error"]["code"] == "unauthorized"
        assert body["error"]["message"]
        assert body["meta"]["request_id"]


async def test_x_api_key_header_works(tenant):
    resp = await tenant.client.get("/api/v1/agents", headers={"X-API-Key": tenant.key})
    assert resp.status == 200


async def test_request_id_is_echoed_or_generated(tenant):
    resp = await tenant.client.get("/api/v1/agents", headers={**tenant.headers, "X-Request-Id": "abc-123"})
    assert resp.headers["X-Request-Id"] == "abc-123"
    assert (await resp.json())["meta"]["request_id"] == "abc-123"
    resp = await tenant.client.get("/api/v1/agents", headers=tenant.headers)
    generated = resp.headers["X-Request-Id"]
    assert len(generated) == 36 and (await resp.json())["meta"]["request_id"] == generated


async def test_rate_limit_headers_on_every_authenticated_response(tenant):
    ok = await tenant.client.get("/api/v1/agents", headers=tenant.headers)
    missing = await tenant.client.get("/api/v1/agents/00000000-0000-0000-0000-000000000000", headers=tenant.headers)
    for resp in (ok, missing):
        assert resp.headers["X-RateLimit-Limit"] == "1000"
        assert int(resp.headers["X-RateLimit-Reset"]) > time.time()
    assert int(missing.headers["X-RateLimit-Remaining"]) == int(ok.headers["X-RateLimit-Remaining"]) - 1


async def test_429_after_the_limit_with_retry_after(tenant):
    from api.keys import LIMITER

    tenant.client.app[LIMITER].limit = 3
    statuses = []
    for _ in range(5):
        resp = await tenant.client.get("/api/v1/agents", headers=tenant.headers)
        statuses.append(resp.status)
    assert statuses == [200, 200, 200, 429, 429]
    body = await resp.json()
    assert body["error"]["code"] == "rate_limited"
    assert int(resp.headers["Retry-After"]) >= 1
    assert resp.headers["X-RateLimit-Remaining"] == "0"


def test_rate_limiter_window_resets():
    now = [1000.0]
    limiter = RateLimiter(2, clock=lambda: now[0])
    assert [limiter.hit("k").allowed for _ in range(3)] == [True, True, False]
    assert limiter.hit("other").allowed
    now[0] += 60
    assert limiter.hit("k").allowed


async def test_malformed_json_is_400_and_non_object_is_422(tenant):
    status, body = await tenant.call("POST", "/agents", data=b"{not json", headers={"Content-Type": "application/json"})
    assert status == 400 and body["error"]["code"] == "bad_request"
    status, body = await tenant.call("POST", "/agents", data=b"[1, 2]", headers={"Content-Type": "application/json"})
    assert status == 422


async def test_body_too_large_is_413(tenant):
    big = b'{"name": "' + b"x" * (1024 * 1024 + 10) + b'"}'
    status, body = await tenant.call("POST", "/agents", data=big, headers={"Content-Type": "application/json"})
    assert status == 413
    assert body["error"]["code"] == "payload_too_large"


async def test_validation_errors_name_the_field(tenant):
    status, body = await tenant.post("/agents", {"name": "x", "max_duration_seconds": 5})
    assert status == 422
    assert body["error"]["code"] == "validation_error"
    assert "max_duration_seconds" in body["error"]["fields"]
    status, body = await tenant.post("/agents", {"name": "x", "response_engine": {"temperature": 3}})
    assert "response_engine.temperature" in body["error"]["fields"]
    status, body = await tenant.post("/agents", {"name": "x", "unknown_field": 1})
    assert status == 422 and "unknown_field" in body["error"]["fields"]


async def test_nul_characters_are_refused_not_500(tenant):
    status, body = await tenant.post("/agents", {"name": "bad\u0000name"})
    assert status == 422 and "name" in body["error"]["fields"]
    status, body = await tenant.post("/agents", {"name": "ok", "begin_message": "x", "knowledge_base_ids": []})
    assert status == 201
    status, _ = await tenant.get("/calls?search=%00")
    assert status == 422


async def test_unknown_route_and_method(tenant):
    status, body = await tenant.get("/nothing-here")
    assert status == 404 and body["error"]["code"] == "not_found"
    status, body = await tenant.call("PUT", "/agents")
    assert status == 405


async def test_malformed_ids_are_404(tenant):
    status, body = await tenant.get("/agents/not-a-uuid")
    assert status == 404


async def test_pagination_newest_first_with_meta(tenant):
    for i in range(5):
        await tenant.post("/agents", {"name": f"a{i}"}, expect=201)
    _, body = await tenant.get("/agents?limit=2&offset=1")
    assert [a["name"] for a in body["data"]] == ["a3", "a2"]
    assert body["meta"]["total"] == 5 and body["meta"]["limit"] == 2 and body["meta"]["offset"] == 1
    status, body = await tenant.get("/agents?limit=1001")
    assert status == 422 and "limit" in body["error"]["fields"]
    _, body = await tenant.get("/agents")
    assert body["meta"]["limit"] == 50


async def test_openapi_document_and_docs_are_served_locally(client):
    resp = await client.get("/api/v1/openapi.json")
    spec = await resp.json()
    assert spec["openapi"].startswith("3.1")
    assert "/api/v1/calls" in spec["paths"] and "/api/v1/trunks/{trunk_id}/status" in spec["paths"]
    create = spec["paths"]["/api/v1/agents"]["post"]
    ref = create["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert "name" in spec["components"]["schemas"][ref]["required"]
    page = await client.get("/docs")
    html = await page.text()
    assert page.status == 200 and "/docs/static/swagger-ui-bundle.js" in html and "http" not in html.split("<body>")[1]
    asset = await client.get("/docs/static/swagger-ui-bundle.js")
    assert asset.status == 200 and len(await asset.read()) > 100_000
