"""The server's process-wide local recogniser, chosen by `SWITCHBOARD_LOCAL_STT`, and started (warmed)
the same way by the server and by `bench/stt.py`."""

from __future__ import annotations

import os

from .base import SpeechToText

KINDS = ("hybrid", "pocketsphinx")  # the first is the default


def local_stt_kind() -> str:
    kind = os.environ.get("SWITCHBOARD_LOCAL_STT", "").strip().lower() or KINDS[0]
    if kind not in KINDS:
        raise ValueError(f"SWITCHBOARD_LOCAL_STT must be one of {', '.join(KINDS)}, not {kind!r}")
    return kind


def make_local_stt(kind: str | None = None) -> SpeechToText:
    from .pocketsphinx_stt import PocketsphinxSTT
    from .sphinx_pool import DecoderPool

    kind = kind or local_stt_kind()
    if kind == "hybrid":
        from .hybrid_stt import HybridSTT

        return HybridSTT(DecoderPool(2))
    return PocketsphinxSTT(DecoderPool(2), interim_results=False)


async def start_local_stt(kind: str | None = None) -> SpeechToText:
    stt = make_local_stt(kind)
    await stt.warm()
    return stt
