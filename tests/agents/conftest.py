from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

_POOL = None


@pytest.fixture
async def stt() -> AsyncIterator[object]:
    """A pocketsphinx STT on one decoder pool for the session (decoders cost ~0.5 s each)."""
    from agents.providers.pocketsphinx_stt import PocketsphinxSTT
    from agents.providers.sphinx_pool import DecoderPool

    global _POOL
    if _POOL is None:
        _POOL = DecoderPool(2)
    yield PocketsphinxSTT(_POOL)
