"""Real pocketsphinx on real espeak-ng speech (generated at test time)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from agent_speech import utterance

from agents.providers.base import Transcript
from agents.providers.pocketsphinx_stt import PocketsphinxSTT
from agents.providers.sphinx_pool import DecoderPool, build_grammar, normalise

PHRASES = [
    "What are your opening hours?",
    "Where are you located?",
    "I would like to book a table.",
    "Can I speak to a person?",
    "How much does it cost?",
    "Cancel my reservation.",
    "Yes, please.",
    "No thanks.",
    "Do you have parking?",
    "What is the wifi password?",
]


async def recognise(stt: PocketsphinxSTT, pcm: np.ndarray, **kw: object) -> list[Transcript]:
    s = stt.stream(**kw)  # type: ignore[arg-type]
    for i in range(0, len(pcm), 320):  # 20 ms frames, as the media tick delivers them
        s.push_audio(pcm[i : i + 320])
    s.end_input()
    return [t async for t in s]


def test_grammar_keeps_known_words_only() -> None:
    g = build_grammar(["Hello there!", "Book a zxqvbl", "hello   THERE", ""], lambda w: w != "zxqvbl")
    assert g is not None
    assert g.phrases == ("hello there",)
    assert g.unknown == ("Book a zxqvbl",)
    assert "public <phrase> = hello there ;" in g.jsgf
    assert build_grammar(["zxqvbl"], lambda w: False) is None
    assert normalise("I’d like 2, please!") == "i'd like please"


@pytest.mark.parametrize("voice", ["en-us", "en-us+f3"])
async def test_phrase_list_recognises_every_expected_phrase(stt: PocketsphinxSTT, voice: str) -> None:
    for k, phrase in enumerate(PHRASES):
        pcm = utterance(phrase, voice, seed=k)
        events = await recognise(stt, pcm, phrases=PHRASES)
        final = [e for e in events if e.is_final]
        assert len(final) == 1 and events[-1] is final[0]
        assert final[0].text == normalise(phrase), (phrase, final[0])
        # offsets: the words sit inside the 0.4 s silence padding
        total_ms = len(pcm) * 1000 // 16000
        assert 250 <= final[0].start_ms < final[0].end_ms <= total_ms - 250
        assert final[0].latency_ms < 1000


async def test_out_of_list_speech_falls_back_to_open_vocabulary(stt: PocketsphinxSTT) -> None:
    pcm = utterance("I would like to book a table for tomorrow evening", seed=3)
    (final,) = [e for e in await recognise(stt, pcm, phrases=["Yes, please.", "No thanks."]) if e.is_final]
    assert "book a table" in final.text
    (strict,) = [e for e in await recognise(stt, pcm, phrases=["Yes, please.", "No thanks."], strict=True)
                 if e.is_final]
    assert strict.text == ""


async def test_open_vocabulary_and_interim_results(stt: PocketsphinxSTT) -> None:
    pcm = utterance("I would like to book a table", seed=4)
    events = await recognise(stt, pcm)
    assert events[-1].is_final and "book a" in events[-1].text
    interim = [e for e in events if not e.is_final]
    assert interim, "partial hypotheses while the utterance streams"
    ends = [e.end_ms for e in interim]
    assert ends == sorted(ends) and ends[-1] <= len(pcm) * 1000 // 16000


async def test_one_stream_per_call_with_two_turns(stt: PocketsphinxSTT) -> None:
    s = stt.stream(phrases=PHRASES)
    first, second = utterance("Where are you located?", seed=5), utterance("Do you have parking?", seed=6)
    s.push_audio(first)
    s.flush()
    s.push_audio(second)
    s.end_input()
    finals = [e async for e in s if e.is_final]
    assert [f.text for f in finals] == ["where are you located", "do you have parking"]
    first_ms = len(first) * 1000 // 16000
    assert finals[0].end_ms <= first_ms < finals[1].start_ms  # the second turn's clock continues


async def test_decoders_are_reused_and_bounded() -> None:
    pool = DecoderPool(2)
    stt = PocketsphinxSTT(pool)
    pcm = utterance("Yes, please.", seed=7)
    try:
        results = await asyncio.gather(*(recognise(stt, pcm, phrases=PHRASES) for _ in range(5)))
        assert all(r[-1].text == "yes please" for r in results)
        assert pool.created == 2  # five concurrent streams shared two decoders
        assert all(0.05 < s < 5 for s in pool.creation_seconds)
    finally:
        await stt.aclose()


async def test_aclose_mid_utterance_returns_the_decoder(stt: PocketsphinxSTT) -> None:
    pool = stt.pool
    s = stt.stream()
    s.push_audio(utterance("How much does it cost?", seed=8))
    await asyncio.sleep(0.05)
    await s.aclose()
    for _ in range(1000):  # the decoder comes back once its executor call is over (slow on a busy machine)
        if len(pool._idle) == pool.created:
            break
        await asyncio.sleep(0.01)
    assert len(pool._idle) == pool.created
    assert [e.text for e in await recognise(stt, utterance("No thanks.", seed=9), phrases=PHRASES)][-1] == "no thanks"


async def test_empty_flush_and_bad_input(stt: PocketsphinxSTT) -> None:
    s = stt.stream()
    s.flush()  # nothing spoken: no transcript
    s.end_input()
    assert [e async for e in s] == []
    with pytest.raises(RuntimeError):
        s.push_audio(np.zeros(320, np.int16))
    s2 = stt.stream()
    with pytest.raises(TypeError):
        s2.push_audio(np.zeros(320, np.float32))
    await s2.aclose()
