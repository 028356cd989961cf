"""Choosing a call's providers: one registry of cloud providers, their endpoints and whose key goes where.

`PROVIDERS` names every cloud provider once: its own endpoint, the environment variable for the
operator's key (`OPENAI_API_KEY`, `GROQ_API_KEY`, `DEEPGRAM_API_KEY`, `ELEVENLABS_API_KEY`) and for an
operator-configured base URL (`OPENAI_BASE_URL`, `GROQ_BASE_URL`, `DEEPGRAM_BASE_URL`,
`ELEVENLABS_BASE_URL`: self-hosted gateways, tests). `ServerProviders.from_env()` reads those settings in
one place. `endpoint(provider, type, keys, tenant_base_url=...)` decides, for one call:

- the organization's key for that provider (its key of the same type first, then one it keeps for
  another type: one OpenAI key serves speech, transcription and chat);
- the **operator's key only for the operator's endpoints**: the provider's own or the operator-configured
  base URL. A base URL the tenant chose (an agent's `response_engine.base_url`) gets the organization's
  key or none — never the server's — and is reached only through `agents.netguard`;
- a key lookup that fails is an error (`KeyLookupError`), never a reason to use the server's key;
- an unknown provider name never gets a server key.

`make_stt(agent["stt"], keys)` and `make_tts(voice, keys)` return the local provider (the process-wide
one passed as `local`; for speech a `local_tts.LocalTTS`, flite and espeak-ng voices) when the agent asks for it, and otherwise a per-call cloud provider. Without a
key, after a failed lookup, or for a provider Switchboard does not know, the call uses the local
provider and the log says why.

A per-call provider belongs to its call: `close_when(ended, providers)` closes them when it ends.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..voices import DEFAULT_VOICE_ID, FALLBACK_VOICE_ID, LOCAL_PROVIDERS, Voice, VoiceCatalog
from .base import ProviderError, SpeechToText, TextToSpeech

log = logging.getLogger(__name__)

KeyLookup = Callable[[str, str], Awaitable[str | None]]  # (provider_type, provider_name) → key

LOCAL_STT = frozenset({"", "local", "pocketsphinx"})
LOCAL_TTS = frozenset({"", "local"}) | LOCAL_PROVIDERS  # the catalog's local voices, or none named
PROVIDER_TYPES = ("stt", "tts", "llm")


@dataclass(frozen=True)
class Provider:
    name: str
    own_base_url: str | None  # None: the SDK's own endpoint
    key_env: str
    base_url_env: str
    types: frozenset[str]


PROVIDERS: dict[str, Provider] = {p.name: p for p in (
    Provider("openai", "https://api.openai.com/v1", "OPENAI_API_KEY", "OPENAI_BASE_URL",
             frozenset({"stt", "tts", "llm"})),
    Provider("groq", "https://api.groq.com/openai/v1", "GROQ_API_KEY", "GROQ_BASE_URL", frozenset({"stt", "llm"})),
    Provider("deepgram", None, "DEEPGRAM_API_KEY", "DEEPGRAM_BASE_URL", frozenset({"stt"})),
    Provider("elevenlabs", None, "ELEVENLABS_API_KEY", "ELEVENLABS_BASE_URL", frozenset({"tts"})),
)}
STT_PROVIDERS = frozenset(n for n, p in PROVIDERS.items() if "stt" in p.types)
TTS_PROVIDERS = frozenset(n for n, p in PROVIDERS.items() if "tts" in p.types)
ENV_KEYS = {n: p.key_env for n, p in PROVIDERS.items()}


class KeyLookupError(ProviderError):
    """The organization's key could not be read: the call must not fall back to the operator's key."""

    def __init__(self, provider: str, cause: BaseException) -> None:
        super().__init__(f"looking up the organization's {provider} key failed: {type(cause).__name__}",
                         retryable=False, reason="key_lookup_failed", provider=provider)


@dataclass(frozen=True)
class ServerProviders:
    """The operator's provider settings: keys and base URLs by provider name."""

    keys: Mapping[str, str] = field(default_factory=dict)
    base_urls: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServerProviders:
        env = os.environ if env is None else env
        keys = {n: v for n, p in PROVIDERS.items() if (v := env.get(p.key_env, "").strip())}
        urls = {n: v for n, p in PROVIDERS.items() if (v := env.get(p.base_url_env, "").strip())}
        return cls(keys, urls)

    def base_url(self, provider: str) -> str | None:
        """The operator-configured base URL, else the provider's own (None: the SDK's default)."""
        known = PROVIDERS.get(provider)
        return self.base_urls.get(provider) or (known.own_base_url if known else None)

    def is_operator_endpoint(self, provider: str, url: str | None) -> bool:
        if not url:
            return True
        known = PROVIDERS.get(provider)
        ours = {u for u in (self.base_urls.get(provider), known.own_base_url if known else None) if u}
        return _same_endpoint(url, ours)


def _same_endpoint(url: str, candidates: Iterable[str]) -> bool:
    def norm(u: str) -> tuple[str, str, int | None, str]:
        parts = urlsplit(u.strip())
        try:
            port = parts.port
        except ValueError:
            port = -1
        default = {"http": 80, "https": 443}.get(parts.scheme.lower())
        return parts.scheme.lower(), (parts.hostname or "").lower(), port or default, parts.path.rstrip("/")

    try:
        wanted = norm(url)
    except ValueError:
        return False
    return any(norm(c) == wanted for c in candidates)


@dataclass(frozen=True)
class Endpoint:
    provider: str
    base_url: str | None  # None: the SDK's default endpoint
    api_key: str | None
    key_source: str  # organization | server | none
    tenant_url: bool  # the tenant chose this URL: reach it only through agents.netguard


async def organization_key(keys: KeyLookup, provider_type: str, provider: str) -> str | None:
    """The organization's key for `provider` (this type first, then the others); `KeyLookupError` when
    the lookup itself fails."""
    for kind in (provider_type, *(t for t in PROVIDER_TYPES if t != provider_type)):
        try:
            key = await keys(kind, provider)
        except Exception as exc:
            log.error("looking up the %s key for %s failed: %r", kind, provider, exc)
            raise KeyLookupError(provider, exc) from exc
        if key:
            return key
    return None


async def endpoint(provider: str, provider_type: str, keys: KeyLookup, *, tenant_base_url: str | None = None,
                   server: ServerProviders | None = None) -> Endpoint:
    """Where a call reaches `provider` and with which key (see the module docstring for the rules)."""
    server = server or ServerProviders.from_env()
    org_key = await organization_key(keys, provider_type, provider)
    if tenant_base_url and not server.is_operator_endpoint(provider, tenant_base_url):
        return Endpoint(provider, tenant_base_url, org_key, "organization" if org_key else "none", True)
    url = tenant_base_url or server.base_url(provider)  # one of the operator's endpoints
    if org_key:
        return Endpoint(provider, url, org_key, "organization", False)
    server_key = server.keys.get(provider) if provider in PROVIDERS else None
    return Endpoint(provider, url, server_key, "server" if server_key else "none", False)


def base_url(provider: str) -> str | None:
    return ServerProviders.from_env().base_url(provider)


async def provider_key(keys: KeyLookup, provider_type: str, provider: str) -> str | None:
    """The key for `provider`'s operator endpoint: the organization's, else the operator's."""
    return (await endpoint(provider, provider_type, keys)).api_key


async def make_stt(settings: Mapping[str, Any] | None, keys: KeyLookup, *, local: SpeechToText | None = None,
                   language: str | None = None, speech_rate: int | None = None) -> SpeechToText:
    """The recogniser an agent's `stt` settings ({provider, model}) ask for. `speech_rate`: the rate the
    call's audio comes at (8 kHz on a G.711 line); a recogniser that takes it as it is gets it so."""
    settings = settings or {}
    provider = str(settings.get("provider") or "local").lower()
    model = settings.get("model") or None
    if provider not in LOCAL_STT:
        if provider not in STT_PROVIDERS:
            log.warning("unknown STT provider %r: using the local recogniser", provider)
        else:
            try:
                ep: Endpoint | None = await endpoint(provider, "stt", keys)
            except KeyLookupError:
                ep = None  # logged: no key rather than the operator's
            key = ep.api_key if ep else None
            if not key:
                log.warning("no %s key for this organization or server (%s): using the local recogniser",
                            provider, ENV_KEYS[provider])
            else:
                try:
                    return _cloud_stt(provider, key, model, language, ep.base_url if ep else None, speech_rate)
                except Exception:
                    log.exception("building the %s recogniser failed: using the local recogniser", provider)
    return local if local is not None else _local_stt()


def _cloud_stt(provider: str, key: str, model: str | None, language: str | None, url: str | None,
               speech_rate: int | None = None) -> SpeechToText:
    if provider == "deepgram":
        from .deepgram_stt import DEFAULT_MODEL, RATES, SAMPLE_RATE, DeepgramSTT

        return DeepgramSTT(api_key=key, model=model or DEFAULT_MODEL, language=language, base_url=url,
                           sample_rate=speech_rate if speech_rate in RATES else SAMPLE_RATE)
    from .openai_stt import DEFAULT_MODEL as OPENAI_MODEL
    from .openai_stt import GROQ_MODEL, OpenAISTT

    default = GROQ_MODEL if provider == "groq" else OPENAI_MODEL
    return OpenAISTT(api_key=key, model=model or default, base_url=url, language=language,
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
            log.warning("unknown TTS provider %r for voice %s: using the local voice", provider, voice.voice_id)
        else:
            try:
                ep: Endpoint | None = await endpoint(provider, "tts", keys)
            except KeyLookupError:
                ep = None  # logged: no key rather than the operator's
            key = ep.api_key if ep else None
            if not key:
                log.warning("no %s key for this organization or server (%s): voice %s falls back to the local voice",
                            provider, ENV_KEYS[provider], voice.voice_id)
            else:
                try:
                    return _cloud_tts(provider, key, voice_settings, ep.base_url if ep else None)
                except Exception:
                    log.exception("building the %s synthesiser failed: using the local voice", provider)
    return local if local is not None else _local_tts()


def _cloud_tts(provider: str, key: str, voice_settings: Mapping[str, Any] | None, url: str | None
               ) -> TextToSpeech:
    if provider == "elevenlabs":
        from .elevenlabs_tts import DEFAULT_MODEL, ElevenLabsTTS

        return ElevenLabsTTS(api_key=key, base_url=url, voice_settings=voice_settings,
                             model_id=os.environ.get("ELEVENLABS_TTS_MODEL") or DEFAULT_MODEL)
    from .openai_tts import DEFAULT_MODEL as OPENAI_MODEL
    from .openai_tts import OpenAITTS

    return OpenAITTS(api_key=key, base_url=url,
                     model=os.environ.get("OPENAI_TTS_MODEL") or OPENAI_MODEL)


def _local_tts() -> TextToSpeech:
    from .local_tts import LocalTTS

    return LocalTTS()


FEMALE_LOCAL_VOICE_ID = "flite-slt"


def fallback_voice(voice: Voice, catalog: VoiceCatalog) -> Voice:
    """The local voice to speak with when `voice`'s provider cannot be used: the default local voice (its
    female counterpart for a female voice), then espeak-ng's. (A flite voice whose binary is missing is
    spoken by espeak-ng inside `LocalTTS`.)"""
    if voice.provider in LOCAL_TTS:
        return voice
    female = (FEMALE_LOCAL_VOICE_ID, f"{FALLBACK_VOICE_ID}-f") if voice.gender == "female" else ()
    for voice_id in (*female, DEFAULT_VOICE_ID, FALLBACK_VOICE_ID):
        found = catalog.get(voice_id)
        if found is not None:
            return found
    return Voice(FALLBACK_VOICE_ID, "English (espeak-ng)", "espeak", "en-US", "male", "", "en-us")


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
