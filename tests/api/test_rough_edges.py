"""Small rough edges found by a newcomer's tour, each through real requests."""

from __future__ import annotations

import pytest


async def test_patch_voice_settings_merges_with_the_keys_it_does_not_name(tenant):
    _, body = await tenant.post("/agents", {"name": "V", "voice_settings": {"stability": 0.3, "speed": 1.1}},
                                expect=201)
    agent = body["data"]
    assert agent["voice_settings"] == {"stability": 0.3, "similarity_boost": None, "speed": 1.1}
    _, body = await tenant.patch(f"/agents/{agent['id']}", {"voice_settings": {"speed": 1.4}}, expect=200)
    assert body["data"]["voice_settings"] == {"stability": 0.3, "similarity_boost": None, "speed": 1.4}
    _, body = await tenant.patch(f"/agents/{agent['id']}", {"voice_settings": {"similarity_boost": 0.8,
                                                                               "stability": None}}, expect=200)
    assert body["data"]["voice_settings"] == {"stability": None, "similarity_boost": 0.8, "speed": 1.4}
    _, body = await tenant.get(f"/agents/{agent['id']}", expect=200)
    assert body["data"]["voice_settings"] == {"stability": None, "similarity_boost": 0.8, "speed": 1.4}
    _, body = await tenant.patch(f"/agents/{agent['id']}", {"voice_settings": None}, expect=200)
    assert body["data"]["voice_settings"] is None  # null on the whole object: back to the default


async def test_language_follows_the_voice_when_not_given(tenant):
    _, body = await tenant.post("/agents", {"name": "Fr", "voice_id": "espeak-fr-fr"}, expect=201)
    agent = body["data"]
    assert agent["language"] == "fr-FR"
    _, body = await tenant.patch(f"/agents/{agent['id']}", {"voice_id": "espeak-de"}, expect=200)
    assert body["data"]["language"] == "de"
    _, body = await tenant.patch(f"/agents/{agent['id']}", {"begin_message": "Hallo"}, expect=200)
    assert body["data"]["language"] == "de"  # unchanged when the voice is not changed
    # given explicitly, the language stays as given
    _, body = await tenant.post("/agents", {"name": "Gb", "voice_id": "espeak-fr-fr", "language": "en-GB"},
                                expect=201)
    assert body["data"]["language"] == "en-GB"
    _, body = await tenant.post("/agents", {"name": "Default"}, expect=201)
    assert body["data"]["language"] == "en-US"


@pytest.mark.parametrize("path, bad", [
    ("/agents", "page"), ("/calls", "task_id"), ("/calls/active", "status"), ("/trunks", "nme"),
    ("/numbers", "page"), ("/knowledge-bases", "q"), ("/voices", "lang"), ("/api-keys", "sort"),
    ("/provider-keys", "page"),
])
async def test_unknown_query_parameters_on_lists_answer_422_naming_them(tenant, path, bad):
    known = {"offset": "0"} if path != "/voices" else {"language": "en"}
    status, body = await tenant.get(path, params={bad: "2", **known})
    assert status == 422, body
    assert list(body["error"]["fields"]) == [bad]
    assert repr(bad) in body["error"]["message"] and next(iter(known)) in body["error"]["message"]
    status, _ = await tenant.get(path, params=known)
    assert status == 200


async def test_known_filters_and_aliases_still_work(tenant, agent):
    _, body = await tenant.get("/agents", params={"enabled": "true", "offset": "0"}, expect=200)
    assert [a["id"] for a in body["data"]] == [agent["id"]]
    await tenant.get("/calls", params={"status": "failed", "direction": "outbound"}, expect=200)
