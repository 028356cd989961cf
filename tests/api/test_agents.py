"""Agents and voices."""

from __future__ import annotations

import uuid


async def test_create_with_defaults_and_aliases(tenant):
    status, body = await tenant.post("/agents", {"agent_name": "Support", "starting_message": "Hi {{user.name}}"})
    assert status == 201
    agent = body["data"]
    assert agent["id"] == agent["agent_id"]
    assert agent["name"] == "Support" and agent["begin_message"] == "Hi {{user.name}}"
    assert agent["language"] == "en-US" and agent["voice_id"] == "flite-kal16"
    assert agent["response_engine"]["type"] == "retrieval"
    assert agent["interruptible"] is True and agent["recording_enabled"] is True
    assert agent["max_duration_seconds"] == 3000 and agent["first_speaker"] == "agent"
    status, body = await tenant.get(f"/agents/{agent['id']}")
    assert status == 200 and body["data"] == agent


async def test_full_agent_definition(tenant):
    payload = {
        "name": "Full",
        "voice_id": "espeak-en-gb-f",
        "language": "en-GB",
        "response_engine": {"type": "llm", "system_prompt": "Be brief.", "llm_provider": "openai",
                            "llm_model": "gpt-4.1-mini", "base_url": "http://127.0.0.1:9999/v1", "temperature": 0.2},
        "stt": {"provider": "deepgram", "model": "nova-3"},
        "first_speaker": "user",
        "interruptible": False,
        "max_duration_seconds": 600,
        "inactivity_timeout_seconds": 30,
        "inactivity_action": "reminder",
        "voice_settings": {"stability": 0.5, "similarity_boost": 0.75, "speed": 1.1},
        "dtmf_rules": [{"digits": "0", "action": "transfer", "target": "sip:ops@example.com"},
                       {"digits": "9", "action": "hangup"}],
        "tools": [{"type": "end_call"}, {"type": "function", "name": "lookup_order", "description": "Find an order",
                                         "parameters": {"type": "object", "properties": {"id": {"type": "string"}}},
                                         "url": "https://example.com/orders", "method": "POST"}],
        "post_call_webhook_url": "https://example.com/hook",
        "post_call_webhook_headers": [{"key": "Authorization", "value": "Bearer t"}],
        "enabled": False,
    }
    status, body = await tenant.post("/agents", payload)
    assert status == 201, body
    agent = body["data"]
    assert agent["response_engine"]["llm_model"] == "gpt-4.1-mini"
    assert agent["tools"][1]["name"] == "lookup_order" and agent["dtmf_rules"][0]["target"] == "sip:ops@example.com"
    assert agent["enabled"] is False
    _, listed = await tenant.get("/agents?enabled=false")
    assert [a["id"] for a in listed["data"]] == [agent["id"]]
    _, listed = await tenant.get("/agents?enabled=true")
    assert listed["data"] == []


async def test_invalid_agents(tenant):
    cases = [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "x", "voice_id": "no-such-voice"}, "voice_id"),
        ({"name": "x", "language": "english please"}, "language"),
        ({"name": "x", "response_engine": {"type": "custom-llm"}}, "response_engine"),
        ({"name": "x", "response_engine": {"type": "magic"}}, "response_engine.type"),
        ({"name": "x", "max_duration_seconds": 7201}, "max_duration_seconds"),
        ({"name": "x", "inactivity_timeout_seconds": 5}, "inactivity_timeout_seconds"),
        ({"name": "x", "dtmf_rules": [{"digits": "1", "action": "transfer"}]}, "dtmf_rules.0"),
        ({"name": "x", "dtmf_rules": [{"digits": "x", "action": "hangup"}]}, "dtmf_rules.0.digits"),
        ({"name": "x", "first_speaker": "nobody"}, "first_speaker"),
        ({"name": "x", "webhook_url": "ftp://example.com"}, "webhook_url"),
        ({"name": "x", "knowledge_base_ids": ["nope"]}, "knowledge_base_ids.0"),
        ({"name": "x", "response_engine": {"temperature": float("nan")}}, None),
    ]
    for payload, field in cases:
        status, body = await tenant.post("/agents", payload)
        assert status in (400, 422), (payload, status, body)
        if field:
            assert field in body["error"]["fields"], (payload, body)
    _, listed = await tenant.get("/agents")
    assert listed["meta"]["total"] == 0  # nothing half-written


async def test_patch_changes_only_given_fields(tenant, agent):
    status, body = await tenant.patch(f"/agents/{agent['id']}", {"begin_message": "New hello", "interruptible": False})
    assert status == 200
    updated = body["data"]
    assert updated["begin_message"] == "New hello" and updated["interruptible"] is False
    assert updated["name"] == agent["name"] and updated["voice_id"] == agent["voice_id"]
    assert updated["updated_at"] >= agent["updated_at"]
    status, body = await tenant.patch(f"/agents/{agent['id']}", {"name": None})
    assert status == 422 and "name" in body["error"]["fields"]
    status, body = await tenant.patch(f"/agents/{agent['id']}", {"voice_id": "nope"})
    assert status == 422
    _, body = await tenant.get(f"/agents/{agent['id']}")
    assert body["data"]["voice_id"] == agent["voice_id"]


async def test_delete_agent_and_409_while_calls_active(tenant, agent, db):
    _, created = await tenant.post("/calls", {"to_number": "sip:bob@127.0.0.1", "agent_id": agent["id"]}, expect=201)
    status, body = await tenant.delete(f"/agents/{agent['id']}")
    assert status == 409 and body["error"]["code"] == "conflict"
    await tenant.post(f"/calls/{created['data']['call_id']}/cancel", expect=200)
    status, _ = await tenant.delete(f"/agents/{agent['id']}")
    assert status == 204
    status, _ = await tenant.get(f"/agents/{agent['id']}")
    assert status == 404
    status, _ = await tenant.delete(f"/agents/{uuid.uuid4()}")
    assert status == 404


async def test_voices_catalog(tenant):
    status, body = await tenant.get("/voices")
    assert status == 200 and body["meta"]["total"] > 50
    voice = body["data"][0]
    assert set(voice) == {"voice_id", "name", "provider", "language", "gender", "description"}
    _, body = await tenant.get("/voices?language=en-US&gender=female")
    assert body["data"] and all(v["gender"] == "female" and v["language"].startswith("en") for v in body["data"])
    assert any(v["voice_id"] == "espeak-en-us-f" for v in body["data"])
    _, body = await tenant.get("/voices?provider=espeak&language=fr")
    assert body["data"] and all(v["language"].startswith("fr") for v in body["data"])
    status, body = await tenant.get("/voices/espeak-en-us")
    assert status == 200 and body["data"]["provider"] == "espeak"
    status, body = await tenant.get("/voices/flite-kal16")
    assert status == 200 and body["data"]["provider"] == "flite" and body["data"]["language"] == "en-US"
    _, body = await tenant.get("/voices?provider=flite")
    assert {v["voice_id"] for v in body["data"]} == {"flite-kal16", "flite-slt", "flite-rms", "flite-awb"}
    status, _ = await tenant.get("/voices/nope")
    assert status == 404
    status, _ = await tenant.get("/voices?gender=robot")
    assert status == 422
