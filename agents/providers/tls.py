"""One TLS context for every provider client.

An httpx client builds its own ``ssl.SSLContext`` (the CA bundle loaded and parsed) unless it is given one:
30–55 ms of the event loop per client, measured here, and a call made three (speech-to-text, LLM,
text-to-speech) — ~160 ms of every other call's audio late at each call set-up. The context is built
once (off the loop, by `agents.providers.preload`) and shared: it holds only the verification settings
(httpx's own defaults: certifi's CA bundle, hostname checks), no per-connection state.
"""

from __future__ import annotations

import functools
import ssl
from typing import Any


@functools.cache
def ssl_context() -> ssl.SSLContext:
    import httpx

    return httpx.create_ssl_context()


def async_client(**kwargs: Any) -> Any:
    """An ``httpx.AsyncClient`` with the shared TLS context (for an SDK's ``httpx_client=``)."""
    import httpx

    kwargs.setdefault("verify", ssl_context())
    return httpx.AsyncClient(**kwargs)


def openai_http_client(**kwargs: Any) -> Any:
    """The openai SDK's own default client (its timeouts, limits, redirects), with the shared TLS context."""
    import openai

    kwargs.setdefault("verify", ssl_context())
    return openai.DefaultAsyncHttpxClient(**kwargs)
