"""Import the cloud providers' SDKs before the first call, off the event loop.

The providers import their SDKs (deepgram-sdk, elevenlabs, openai, with httpx, websockets and pydantic
models) lazily, so that a server without cloud keys never pays for them. But the first call that does use
them then imported ~1.3 s of modules on the event loop (stalls of 346 and 374 ms measured in bench-sip's
two-worker cloud run, every call's audio late meanwhile). `preload()` does that work once, in a thread, at
start-up: the telephony awaits it before it takes calls. It builds one throwaway provider of each kind the
way a call does (the shared TLS context and the Deepgram socket options come with them) and touches the
sub-clients the SDKs build lazily, then imports the SDK modules the providers import only when a result or
an error arrives.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

MODULES = (  # imported by the providers inside methods, not by building a client
    "websockets.exceptions", "deepgram.core.api_error", "deepgram.listen.v1.types",
    "elevenlabs", "elevenlabs.core.api_error", "openai.types.chat",
)


def _providers() -> list[tuple[str, Callable[[], Any]]]:
    from .deepgram_stt import DeepgramSTT
    from .elevenlabs_tts import ElevenLabsTTS
    from .openai_llm import OpenAILLM
    from .openai_stt import OpenAISTT
    from .openai_tts import OpenAITTS

    return [
        ("deepgram", lambda: DeepgramSTT(api_key="preload").client.listen.v1),
        ("elevenlabs", lambda: ElevenLabsTTS(api_key="preload").client.text_to_speech),
        ("openai llm", lambda: OpenAILLM(api_key="preload", model="preload").client.chat.completions),
        ("openai stt", lambda: OpenAISTT(api_key="preload").client.audio.transcriptions),
        ("openai tts", lambda: OpenAITTS(api_key="preload").client.audio.speech),
    ]


def preload() -> float:
    """Build a provider of each kind and import what they import later; returns the seconds spent. Never
    raises (a missing SDK is imported, and fails, at the call that needs it). Blocking: run it in a thread."""
    t0 = time.perf_counter()
    for name, build in _providers():
        try:
            build()
        except Exception as exc:
            log.debug("%s preload: %s", name, exc)
    for module in MODULES:
        try:
            importlib.import_module(module)
        except ImportError:
            log.debug("provider SDK module %s is not installed", module)
    return time.perf_counter() - t0
