import numpy as np
import pytest

from media.vad import WINDOW, VadBank, VadStream, default_model_path


def windows(x: np.ndarray, n: int) -> np.ndarray:
    return x[: len(x) // n * n].reshape(-1, n)


def signals(speech: np.ndarray, rate: int) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    t = np.arange(len(speech)) / rate
    return [
        speech,
        np.zeros_like(speech),
        (rng.normal(0, 800, len(speech))).astype(np.int16),
        (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16),
        np.roll(speech, len(speech) // 3),
        (speech // 4 + rng.normal(0, 300, len(speech))).astype(np.int16),
    ]


@pytest.mark.parametrize("rate", [16000, 8000])
def test_batched_equals_one_stream_at_a_time(vad_model, speech_16k, speech_8k, rate):
    speech = speech_16k if rate == 16000 else speech_8k
    sigs = [windows(s, WINDOW[rate])[:40] for s in signals(speech, rate)]
    # reference: every stream alone in its own bank (batch of one)
    alone = []
    for s in sigs:
        bank = VadBank(vad_model, rate, capacity=1)
        slot = bank.open()
        alone.append([bank.infer([slot], w[None, :])[0] for w in s])
    alone_arr = np.array(alone)
    # batched: one shared bank, one run per step for all streams; streams 4 and 5 skip some steps
    # (as when a call has no full window on a tick) and catch up later, in a shuffled slot order
    bank = VadBank(vad_model, rate, capacity=2)  # forces growth too
    slots = [bank.open() for _ in sigs]
    pos = [0] * len(sigs)
    got = np.zeros_like(alone_arr)
    runs_before = vad_model.runs
    steps = 0
    rng = np.random.default_rng(5)
    while min(pos) < 40:
        active = [i for i in range(len(sigs)) if pos[i] < 40 and not (i >= 4 and rng.random() < 0.3)]
        rng.shuffle(active)
        if not active:
            continue
        probs = bank.infer([slots[i] for i in active], np.stack([sigs[i][pos[i]] for i in active]))
        for i, p in zip(active, probs, strict=True):
            got[i, pos[i]] = p
            pos[i] += 1
        steps += 1
    assert vad_model.runs - runs_before == steps  # one session.run per step, whatever the batch
    np.testing.assert_allclose(got, alone_arr, atol=1e-5, rtol=0)


@pytest.mark.parametrize("rate", [16000, 8000])
def test_speech_scores_high_silence_and_noise_low(vad_model, speech_16k, speech_8k, rate):
    speech = speech_16k if rate == 16000 else speech_8k
    bank = VadBank(vad_model, rate)
    pad = np.zeros(rate // 2, np.int16)
    p_speech = VadStream(bank).process(np.concatenate([pad, speech, pad]))
    n = WINDOW[rate]
    body = p_speech[len(pad) // n + 3 : (len(pad) + len(speech)) // n - 3]
    assert np.mean(body > 0.5) > 0.7  # espeak speech: mostly clearly speech
    assert p_speech[:4].max() < 0.1  # the leading silence is not
    rng = np.random.default_rng(0)
    for quiet in (np.zeros(rate * 2, np.int16), rng.normal(0, 500, rate * 2).astype(np.int16)):
        p = VadStream(bank).process(quiet)
        assert p.max() < 0.3 and p.mean() < 0.1


def test_stream_buffers_partial_windows_and_slots_are_reused(vad_model, speech_16k):
    bank = VadBank(vad_model, 16000, capacity=4)
    whole = VadStream(bank).process(speech_16k[:5120])
    s = VadStream(bank)
    parts = [s.process(speech_16k[i : i + 320]) for i in range(0, 5120, 320)]
    np.testing.assert_allclose(np.concatenate(parts), whole, atol=1e-6)
    s.close()
    s2 = VadStream(bank)
    assert s2.slot == s.slot  # reused, and reset to a fresh state
    np.testing.assert_allclose(s2.process(speech_16k[:5120]), whole, atol=1e-6)


def test_errors_and_model_location(vad_model):
    assert default_model_path().name == "silero_vad.onnx"
    with pytest.raises(ValueError):
        VadBank(vad_model, 44100)
    bank = VadBank(vad_model, 16000)
    with pytest.raises(ValueError):
        bank.infer([bank.open()], np.zeros((1, 256), np.int16))
