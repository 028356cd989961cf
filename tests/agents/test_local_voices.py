"""The local voices in the catalog, the default voice, and how the registry picks and falls back to them."""

from __future__ import annotations

import pytest

from agents.config import DEFAULT_VOICE, AgentConfig
from agents.providers import registry
from agents.providers.local_tts import LocalTTS
from agents.voices import DEFAULT_VOICE_ID, FALLBACK_VOICE_ID, VoiceCatalog, cloud_voices, flite_voices
from switchboard.bootstrap import DEMO_AGENT_CONFIG


@pytest.fixture(scope="module")
def catalog() -> VoiceCatalog:
    return VoiceCatalog.load_local()


def test_the_catalog_lists_the_flite_voices(catalog: VoiceCatalog) -> None:
    flite = catalog.search(provider="flite")
    assert {v.voice_id for v in flite} == {"flite-kal16", "flite-slt", "flite-rms", "flite-awb"}
    kal = catalog.get("flite-kal16")
    assert kal is not None and kal.engine_voice == "flite:kal16" and kal.language == "en-US"
    assert kal.gender == "male" and not kal.cloud and "offline" in kal.description
    slt = catalog.get("flite-slt")
    assert slt is not None and slt.gender == "female"
    # local voices need no key: listed to an organization holding none
    assert {"flite", "espeak"} == {v.provider for v in catalog.search(available=set())}
    # espeak-ng stays, with its many languages
    assert catalog.get(FALLBACK_VOICE_ID) is not None and catalog.search(provider="espeak", language="fr")
    assert catalog.search(language="en-GB", provider="flite")[0].voice_id == "flite-awb"


def test_the_default_voice_is_flite_kal16(catalog: VoiceCatalog) -> None:
    assert DEFAULT_VOICE_ID == DEFAULT_VOICE == "flite-kal16"
    assert AgentConfig.load({}).voice_id == "flite-kal16"
    assert DEMO_AGENT_CONFIG["voice_id"] == "flite-kal16"
    assert catalog.get(DEFAULT_VOICE_ID) is not None


async def test_flite_voices_are_local_to_the_registry() -> None:
    local = LocalTTS()

    async def no_keys(provider_type: str, provider_name: str) -> str | None:
        return None

    for voice in flite_voices():
        assert voice.provider in registry.LOCAL_TTS
        assert await registry.make_tts(voice, no_keys, local=local) is local
    assert isinstance(registry._local_tts(), LocalTTS)


def test_cloud_voices_fall_back_to_flite(catalog: VoiceCatalog) -> None:
    nova, onyx = catalog.get("openai-nova"), catalog.get("openai-onyx")
    assert nova is not None and onyx is not None
    assert registry.fallback_voice(nova, catalog).voice_id == "flite-slt"
    assert registry.fallback_voice(onyx, catalog).voice_id == "flite-kal16"
    kal = catalog.get("flite-kal16")
    assert kal is not None and registry.fallback_voice(kal, catalog) is kal
    # a catalog without flite voices (older data): espeak-ng, same gender
    espeak_only = VoiceCatalog([v for v in catalog.search(provider="espeak")] + cloud_voices())
    assert registry.fallback_voice(nova, espeak_only).voice_id == "espeak-en-us-f"
    assert registry.fallback_voice(onyx, espeak_only).voice_id == "espeak-en-us"
