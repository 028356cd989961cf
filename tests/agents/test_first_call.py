"""The first call after a start hears the demo's own question like every later call (issue 8 item 5).

Real espeak-ng speech at 130 and 150 words/min through an 8 kHz G.711 μ-law line, cut by the server's VAD
and endpointer, into a freshly started local recogniser (new decoder processes), with the demo phrases."""

from __future__ import annotations

import pytest

from agents.knowledge.demo import DEMO_PHRASES
from agents.providers.local_stt import start_local_stt
from bench.stt import Endpointing, phone_utterance, recognise


@pytest.mark.parametrize("wpm", [130, 150])
async def test_first_call_after_start_hears_the_demo_question(wpm: int) -> None:
    cut = Endpointing()
    question = cut.utterances(phone_utterance("what does switchboard do", "en-us", wpm))
    stt = await start_local_stt("pocketsphinx")
    try:
        first, _ = await recognise(stt, question, DEMO_PHRASES)
        second, _ = await recognise(stt, question, DEMO_PHRASES)
    finally:
        await stt.aclose()
    assert (first, second) == ("what does switchboard do", "what does switchboard do")


async def test_every_demo_phrase_at_150_wpm_on_a_phone_line() -> None:
    cut = Endpointing()
    stt = await start_local_stt("pocketsphinx")
    try:
        heard = [(await recognise(stt, cut.utterances(phone_utterance(p, "en-us", 150, seed=k)), DEMO_PHRASES))[0]
                 for k, p in enumerate(DEMO_PHRASES)]
    finally:
        await stt.aclose()
    assert heard == DEMO_PHRASES
