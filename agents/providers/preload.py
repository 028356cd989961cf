"""Import the cloud providers' SDKs before the first call, off the event loop.

The providers import their SDKs (deepgram-sdk, elevenlabs, openai, with httpx, websockets and pydantic
models) lazily, so that a server without cloud keys never pays for them. But the first call that does use
them then imported ~1.3 s of modules on the event loop (stalls of 346 and 374 ms measured in bench-sip's
two-worker cloud run, every call's audio late meanwhile). `preload()` does that work once, in a thread, at
start-up: the telephony awaits it before it takes calls. First use of a client also builds lazily imported
sub-clients (``client.listen.v1``, ``client.text_to_speech``, ``client.chat.completions``): touched here too.
"""

from __future__ import annotations

import importlib
import logging
import time

log = logging.getLogger(__name__)

MODULES = (
    "httpx", "websockets.exceptions", "openai", "openai.types.chat",
    "deepgram", "deepgram.core.api_error", "deepgram.environment", "deepgram.listen.v1.types",
    "elevenlabs", "elevenlabs.client", "elevenlabs.core.api_error",
)


def preload() -> float:
    """Import the SDKs (those installed) and build one throwaway client of each; returns the seconds spent.
    Blocking: run it in a thread."""
    from .tls import ssl_context

    t0 = time.perf_counter()
    for name in MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            log.debug("provider SDK module %s is not installed", name)
    try:
        ssl_context()  # the CA bundle, parsed once for every client
    except Exception as exc:
        log.debug("TLS context preload: %s", exc)
    try:
        import openai

        client = openai.AsyncOpenAI(api_key="preload", base_url="http://127.0.0.1:9/v1")
        _ = client.chat.completions, client.audio.speech, client.audio.transcriptions
    except Exception as exc:  # never fatal: the first call imports what is missing
        log.debug("openai preload: %s", exc)
    try:
        from deepgram import AsyncDeepgramClient

        _ = AsyncDeepgramClient(api_key="preload").listen.v1
    except Exception as exc:
        log.debug("deepgram preload: %s", exc)
    try:
        from elevenlabs.client import AsyncElevenLabs

        _ = AsyncElevenLabs(api_key="preload").text_to_speech
    except Exception as exc:
        log.debug("elevenlabs preload: %s", exc)
    return time.perf_counter() - t0
