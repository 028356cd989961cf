"""pocketsphinx holds the GIL for a whole decode; decoding in child processes keeps the event loop (and
so the media tick) on time."""

from __future__ import annotations

import asyncio
import os
import time

import numpy as np

from agents.providers.pocketsphinx_stt import PocketsphinxSTT
from agents.providers.sphinx_pool import DecoderPool
from tests.agents.agent_speech import utterance


async def test_decoding_does_not_stall_the_event_loop():
    pool = DecoderPool(1)
    stt = PocketsphinxSTT(pool, interim_results=False)
    try:
        await pool.warm()
        idle = pool._idle[0]
        assert idle.decoder.pid not in (None, os.getpid())  # the decoder lives in its own process
        sentence = "the quick brown fox jumps over the lazy dog near the river bank every morning"
        audio = np.concatenate([utterance(sentence, seed=i) for i in range(4)])  # ~15 s, open vocabulary
        stream = stt.stream()
        gaps: list[float] = []
        done = asyncio.Event()

        async def ticker() -> None:  # what the 20 ms media tick experiences
            last = time.perf_counter()
            while not done.is_set():
                await asyncio.sleep(0.01)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        task = asyncio.create_task(ticker())
        t0 = time.perf_counter()
        stream.push_audio(audio)
        stream.flush()
        final = await asyncio.wait_for(anext(aiter(stream)), 60)
        decode_s = time.perf_counter() - t0
        done.set()
        await task
        await stream.aclose()
        assert final.is_final and "fox" in final.text
        assert decode_s > 0.3  # real work happened meanwhile
        # in-process, the loop would stall for the whole decode (seconds); allow for a loaded machine
        gaps.sort()
        p99 = gaps[int(len(gaps) * 0.99)]
        assert gaps[-1] < min(0.5, decode_s / 3), f"the loop stalled {gaps[-1] * 1000:.0f} ms in a {decode_s:.1f} s decode"
        assert p99 < 0.05, f"p99 loop gap {p99 * 1000:.0f} ms"
    finally:
        pool.close()
