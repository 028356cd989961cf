"""The hybrid local recogniser: phrase grammar first, one shared Whisper model on a miss.

Real espeak-ng speech through an 8 kHz G.711 μ-law line (bench.stt), cut by the server's VAD and
endpointer, into real pocketsphinx decoders and a real Whisper base model in its helper process."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
from collections.abc import Iterator

import numpy as np
import pytest

from agents.knowledge.demo import DEMO_PHRASES
from agents.providers.hybrid_stt import HybridSTT, plausible
from agents.providers.pocketsphinx_stt import PocketsphinxSTT
from agents.providers.sphinx_pool import DecoderPool
from agents.providers.whisper_models import BASE_SHA256, model_dir
from agents.providers.whisper_worker import WhisperOverloaded, WhisperResult, WhisperService
from bench.stt import Endpointing, phone_line, phone_utterance, recognise
from media.resample import Resampler

OUT_OF_GRAMMAR = "can i use my own phone number"
# the model runs at nice 10 (agents.childproc): on a machine saturated by other work it starts and decodes slowly
pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def cut() -> Endpointing:
    return Endpointing()


@pytest.fixture(scope="module")
def whisper() -> Iterator[WhisperService]:
    """One model process for the module, as the server shares one across calls (loading costs seconds)."""
    service = WhisperService()
    yield service
    service.terminate()


async def test_whisper_hears_what_the_grammar_misses(cut: Endpointing, whisper: WhisperService) -> None:
    speech = cut.utterances(phone_utterance(OUT_OF_GRAMMAR, "en-us", 150))
    light = PocketsphinxSTT(DecoderPool(1), interim_results=False)
    hybrid = HybridSTT(DecoderPool(1), whisper)
    try:
        await asyncio.gather(light.warm(), hybrid.warm())
        pocketsphinx_heard, _ = await recognise(light, speech, DEMO_PHRASES)
        heard, _ = await recognise(hybrid, speech, DEMO_PHRASES)
        # an expected phrase stays on the grammar's fast path: Whisper is not asked
        decodes = hybrid.whisper.decodes
        expected, _ = await recognise(hybrid, cut.utterances(phone_utterance("is there an api", "en-us", 150)),
                                      DEMO_PHRASES)
        assert hybrid.whisper.decodes == decodes
    finally:
        await asyncio.gather(light.aclose(), hybrid.aclose())
    assert pocketsphinx_heard != OUT_OF_GRAMMAR
    assert heard == OUT_OF_GRAMMAR, heard
    assert expected == "is there an api"
    assert hybrid.stats["whisper"] == 1 and hybrid.stats["grammar"] == 1
    assert whisper.pid is not None  # the shared model outlives one recogniser (its owner closes it)


async def test_line_noise_never_reaches_whisper_as_text(cut: Endpointing) -> None:
    """A click of noise on the line is not speech: no transcript, whatever Whisper would invent."""
    rng = np.random.default_rng(5)
    burst = np.zeros(16000, np.int16)
    burst[6000:7200] = rng.normal(0, 3000, 1200).astype(np.int16)  # 75 ms crackle
    line = phone_line(burst, 16000, seed=3)
    hybrid = HybridSTT(DecoderPool(1))
    try:
        await hybrid.pool.warm()  # no Whisper: it must not even be started for this
        stream = hybrid.stream(phrases=DEMO_PHRASES)
        stream.push_audio(Resampler(8000, 16000).process(line))
        stream.end_input()
        finals = [e async for e in stream if e.is_final]
    finally:
        await hybrid.aclose()
    assert [f.text for f in finals] == [""]
    assert hybrid.whisper.decodes == 0 and hybrid.whisper.pid is None and hybrid.stats["no_speech"] == 1


def test_invented_phrases_are_dropped() -> None:
    def result(text: str, no_speech: float = 0.1, logprob: float = -0.3, ratio: float = 1.2) -> WhisperResult:
        return WhisperResult(text, logprob, no_speech, ratio, 0.5, 0.5)

    assert plausible(result("Can I use my own phone number?"), 1.8)
    assert not plausible(result("Thank you."), 1.0)
    assert not plausible(result("you"), 1.0)
    assert not plausible(result("what what what what", ratio=3.1), 1.0)
    assert not plausible(result("Hello there.", no_speech=0.9, logprob=-0.9), 1.0)
    assert not plausible(result(" ".join(["word"] * 30)), 0.6)  # more words than fit in 0.6 s


async def test_the_queue_is_bounded_and_sheds_at_once(cut: Endpointing, whisper: WhisperService) -> None:
    (speech,) = cut.utterances(phone_utterance("where are the recordings stored", "en-us", 170))
    service = whisper
    service.max_queue, service.shed, service.decodes = 2, 0, 0
    try:
        await service.start()
        depths: list[int] = []

        async def one() -> object:
            try:
                return await service.transcribe(speech)
            except WhisperOverloaded as exc:
                depths.append(service.depth)
                return exc

        results = await asyncio.gather(*(one() for _ in range(5)))
        shed = [r for r in results if isinstance(r, WhisperOverloaded)]
        done = [r for r in results if isinstance(r, WhisperResult)]
        assert len(done) == 2 and len(shed) == 3 and service.shed == 3
        assert depths == [2, 2, 2]  # refused while two were queued or decoding, never more
        assert all("record" in r.text.lower() for r in done), [r.text for r in done]
        assert service.depth == 0 and service.decodes == 2
        assert 0 < service.worst_wait_s < 2 * 60
    finally:
        service.max_queue = 4


async def test_the_helper_is_hardened_and_one_model_serves_every_stream(cut: Endpointing,
                                                                        whisper: WhisperService) -> None:
    service = whisper
    decodes = service.decodes
    hybrid = HybridSTT(DecoderPool(2), service)
    try:
        await hybrid.warm()
        pid = service.pid
        assert pid is not None and pid != os.getpid()
        assert os.getpriority(os.PRIO_PROCESS, pid) >= 10  # agents.childproc.harden ran first in the child
        speech = cut.utterances(phone_utterance("how many calls can it handle at the same time", "en-us", 150))
        heard = await asyncio.gather(*(recognise(hybrid, speech, DEMO_PHRASES) for _ in range(3)))
        assert service.pid == pid and service.decodes == decodes + 3  # one model process for three calls
        assert all("can it handle at the same time" in h for h, _ in heard), heard
    finally:
        await hybrid.aclose()


def test_base_model_is_joined_once_and_checked(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib
    from pathlib import Path

    monkeypatch.setenv("SWITCHBOARD_MODEL_DIR", str(tmp_path))
    path = model_dir("base")
    model = path / "model.bin"
    h = hashlib.sha256()
    with open(model, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    assert h.hexdigest() == BASE_SHA256
    assert {p.name for p in path.iterdir()} == {"model.bin", "config.json", "tokenizer.json", "vocabulary.txt"}
    mtime = model.stat().st_mtime_ns
    assert model_dir("base") == path and model.stat().st_mtime_ns == mtime  # not joined again
    assert Path(str(tmp_path)).is_dir()


async def test_closing_while_the_model_loads_ends_the_helper() -> None:
    """A server stopped during start-up (a test's, or a quick restart) used to leave the helper loading the
    model and then running, at most of a core, until the parent process exited: its start is shielded from
    the caller's cancellation, so it finished after the close."""
    others = {c.pid for c in multiprocessing.active_children()}  # the module's shared service among them
    service = WhisperService()
    start = asyncio.create_task(service.start())
    for _ in range(500):  # until the helper process exists (a model load takes seconds)
        if {c.pid for c in multiprocessing.active_children()} - others:
            break
        await asyncio.sleep(0.01)
    (helper,) = [c for c in multiprocessing.active_children() if c.pid not in others]
    assert helper.name == "whisper"
    start.cancel()
    await service.aclose()
    with contextlib.suppress(asyncio.CancelledError):
        await start
    assert not helper.is_alive() and service.pid is None
