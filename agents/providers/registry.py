"""Choosing a call's speech providers: local ones, or a cloud one keyed by the organization.

`make_stt(agent["stt"], keys)` and `make_tts(voice, keys)` return the local provider (the process-wide
one passed as `local`) when the agent asks for it, and otherwise build a per-call cloud provider with the
organization's key for that provider — its key of the same type first, then one it keeps for another
type (one OpenAI key serves speech, transcription and chat), then the server's environment
(`DEEPGRAM_API_KEY`, `OPENAI_API_KEY`, `GROQ_API_KEY`, `ELEVENLABS_API_KEY`). Without any key, or for a
provider Switchboard does not know, the call falls back to the local provider and the log says why.
Base URLs come from `DEEPGRAM_BASE_URL`, `OPENAI_BASE_URL`, `GROQ_BASE_URL`, `ELEVENLABS_BASE_URL` when
set (self-hosted gateways, tests), else the providers' own.

A per-call provider belongs to its call: `close_when(ended, providers)` closes them when it ends.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from ..voices import DEFAULT_VOICE_ID, Voice, VoiceCatalog
from .base import SpeechToText, TextToSpeech

log = logging.getLogger(__name__)

KeyLookup = Callable[[str, str], Awaitable[str | None]]  # (provider_type, provider_name) → key

LOCAL_STT = frozenset({"", "local", "pocketsphinx"})
LOCAL_TTS = frozenset({"", "local", "espeak"})
STT_PROVIDERS = frozenset({"deepgram", "openai", "groq"})
TTS_PROVIDERS = frozenset({"openai", "elevenlabs"})
PROVIDER_TYPES = ("stt", "tts", "llm")

ENV_KEYS = {"deepgram": "DEEPGRAM_API_KEY", "openai": "OPENAI_API_KEY", "groq": "GROQ_API_KEY",
            "elevenlabs": "ELEVENLABS_API_KEY"}
ENV_BASE_URLS = {"deepgram": "DEEPGRAM_BASE_URL", "openai": "OPENAI_BASE_URL", "groq": "GROQ_BASE_URL",
                 "elevenlabs": "ELEVENLABS_BASE_URL"}


def base_url(provider: str) -> str | None:
    from .openai_stt import GROQ_BASE_URL

    url = os.environ.get(ENV_BASE_URLS.get(provider, ""), "").strip()
    if url:
        return url
    return GROQ_BASE_URL if provider == "groq" else None


async def provider_key(keys: KeyLookup, provider_type: str, provider: str) -> str | None:
    """The organization's key for `provider` (this type first, then the others), else the environment's."""
    for kind in (provider_type, *(t for t in PROVIDER_TYPES if t != provider_type)):
        try:
            key = await keys(kind, provider)
        except Exception:
            log.exception("looking up the %s key for %s failed", kind, provider)
            break
        if key:
            return key
    return os.environ.get(ENV_KEYS.get(provider, ""), "").strip() or None


async def make_stt(settings: Mapping[str, Any] | None, keys: KeyLookup, *, local: SpeechToText | None = None,
                   language: str | None = None) -> SpeechToText:
    """The recogniser an agent's `stt` settings ({provider, model}) ask for."""
    settings = settings or {}
    provider = str(settings.get("provider") or "local").lower()
    model = settings.get("model") or None
    if provider not in LOCAL_STT:
        if provider not in STT_PROVIDERS:
            log.warning("unknown STT provider %r: using the local recogniser", provider)
        else:
            key = await provider_key(keys, "stt", provider)
            if not key:
                log.warning("no %s key for this organization or server (%s): using the local recogniser",
                            provider, ENV_KEYS[provider])
            else:
                try:
                    return _cloud_stt(provider, key, model, language)
                except Exception:
                    log.exception("building the %s recogniser failed: using the local recogniser", provider)
    return local if local is not None else _local_stt()


def _cloud_stt(provider: str, key: str, model: str | None, language: str | None) -> SpeechToText:
    if provider == "deepgram":
        from .deepgram_stt import DEFAULT_MODEL, DeepgramSTT

        return DeepgramSTT(api_key=key, model=model or DEFAULT_MODEL, language=language,
                           base_url=base_url("deepgram"))
    from .openai_stt import DEFAULT_MODEL as OPENAI_MODEL
    from .openai_stt import GROQ_MODEL, OpenAISTT

    default = GROQ_MODEL if provider == "groq" else OPENAI_MODEL
    return OpenAISTT(api_key=key, model=model or default, base_url=base_url(provider), language=language,
                     provider=provider)


def _local_stt() -> SpeechToText:
    from .local_stt import make_local_stt

    return make_local_stt()


async def make_tts(voice: Voice, keys: KeyLookup, *, local: TextToSpeech | None = None,
                   voice_settings: Mapping[str, Any] | None = None) -> TextToSpeech:
    """The synthesiser for `voice` (its `provider`); `voice_settings` = the agent's (stability,
    similarity_boost, speed). Returns `local` when the voice is local or its provider cannot be used —
    then speak with `fallback_voice(voice, catalog)`."""
    provider = voice.provider.lower()
    if provider not in LOCAL_TTS:
        if provider not in TTS_PROVIDERS:
            log.warning("unknown TTS provider %r for voice %s: using espeak-ng", provider, voice.voice_id)
        else:
            key = await provider_key(keys, "tts", provider)
            if not key:
                log.warning("no %s key for this organization or server (%s): voice %s falls back to espeak-ng",
                            provider, ENV_KEYS[provider], voice.voice_id)
            else:
                try:
                    return _cloud_tts(provider, key, voice_settings)
                except Exception:
                    log.exception("building the %s synthesiser failed: using espeak-ng", provider)
    return local if local is not None else _local_tts()


def _cloud_tts(provider: str, key: str, voice_settings: Mapping[str, Any] | None) -> TextToSpeech:
    if provider == "elevenlabs":
        from .elevenlabs_tts import DEFAULT_MODEL, ElevenLabsTTS

        return ElevenLabsTTS(api_key=key, base_url=base_url("elevenlabs"), voice_settings=voice_settings,
                             model_id=os.environ.get("ELEVENLABS_TTS_MODEL") or DEFAULT_MODEL)
    from .openai_tts import DEFAULT_MODEL as OPENAI_MODEL
    from .openai_tts import OpenAITTS

    return OpenAITTS(api_key=key, base_url=base_url("openai"),
                     model=os.environ.get("OPENAI_TTS_MODEL") or OPENAI_MODEL)


def _local_tts() -> TextToSpeech:
    from .espeak_tts import EspeakTTS

    return EspeakTTS()


def fallback_voice(voice: Voice, catalog: VoiceCatalog) -> Voice:
    """The local voice to speak with when `voice`'s provider cannot be used: same gender, default language."""
    if voice.provider in LOCAL_TTS:
        return voice
    wanted = f"{DEFAULT_VOICE_ID}-f" if voice.gender == "female" else DEFAULT_VOICE_ID
    found = catalog.get(wanted) or catalog.get(DEFAULT_VOICE_ID)
    if found is not None:
        return found
    return Voice(DEFAULT_VOICE_ID, "English (espeak-ng)", "espeak", "en-US", "male", "", "en-us")


async def close_when(ended: asyncio.Event, providers: Iterable[SpeechToText | TextToSpeech]) -> None:
    """Close per-call providers once `ended` is set (or this task is cancelled at the call's end)."""
    owned = list(providers)
    try:
        await ended.wait()
    finally:
        for provider in owned:
            try:
                await provider.aclose()
            except Exception:
                log.exception("closing %s failed", type(provider).__name__)
