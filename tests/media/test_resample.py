import math

import numpy as np
import pytest

from media.resample import Resampler, StreamResampler

PAIRS = [
    (8000, 16000),
    (16000, 8000),
    (22050, 8000),
    (22050, 16000),
    (24000, 8000),
    (24000, 16000),
    (48000, 8000),
    (48000, 16000),
]
AMP = 12000.0


def sine(rate: int, freq: float, seconds: float, delay: float = 0.0) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate - delay
    return AMP * np.sin(2 * np.pi * freq * t)


def framewise(r: Resampler, x: np.ndarray, n: int) -> list[np.ndarray]:
    return [r.process(x[i : i + n]) for i in range(0, len(x), n)]


@pytest.mark.parametrize("in_rate,out_rate", PAIRS)
def test_framewise_sine_matches_ideal_and_one_shot(in_rate, out_rate):
    freq = 1000.0
    x = np.round(sine(in_rate, freq, 1.0)).astype(np.int16)
    r = Resampler(in_rate, out_rate)
    frames = framewise(r, x, in_rate // 50)
    # every 20 ms frame in gives exactly one 20 ms frame out
    assert {len(f) for f in frames} == {out_rate // 50}
    y = np.concatenate(frames).astype(np.float64)
    # the same signal in one call: identical up to float summation order (±1 LSB)
    one_shot = Resampler(in_rate, out_rate).process(x).astype(np.float64)
    assert len(one_shot) == len(y)
    assert np.max(np.abs(one_shot - y)) <= 1
    # and it is the ideal sine at the output rate, delayed by the filter's group delay
    ideal = sine(out_rate, freq, 1.0, delay=r.delay_seconds)
    settled = slice(out_rate // 50, None)
    err = np.abs(y[settled] - ideal[settled])
    assert err.max() < 0.005 * AMP, err.max()


@pytest.mark.parametrize("in_rate,out_rate", PAIRS)
def test_no_discontinuity_at_frame_boundaries(in_rate, out_rate):
    freq = 440.0
    x = np.round(sine(in_rate, freq, 0.5)).astype(np.int16)
    r = Resampler(in_rate, out_rate)
    y = np.concatenate(framewise(r, x, in_rate // 50)).astype(np.float64)[out_rate // 100 :]
    max_jump = np.max(np.abs(np.diff(y)))
    ideal_jump = 2 * math.pi * freq / out_rate * AMP
    assert max_jump <= ideal_jump * 1.02 + 2, (max_jump, ideal_jump)


def test_stateless_per_frame_resampling_would_click():
    """Guards the discontinuity check: restarting the filter each frame is caught by it."""
    x = np.round(sine(8000, 440.0, 0.2)).astype(np.int16)
    y = np.concatenate([Resampler(8000, 16000).process(x[i : i + 160]) for i in range(0, len(x), 160)])
    ideal_jump = 2 * math.pi * 440.0 / 16000 * AMP
    assert np.max(np.abs(np.diff(y[160:].astype(np.float64)))) > 2 * ideal_jump


@pytest.mark.parametrize("in_rate,out_rate", PAIRS)
def test_output_count_is_exact_for_irregular_blocks(in_rate, out_rate):
    rng = np.random.default_rng(in_rate + out_rate)
    r = Resampler(in_rate, out_rate)
    total_in = total_out = 0
    for _ in range(200):
        n = int(rng.integers(0, 700))
        assert r.output_count(n) == len(out := r.process(rng.integers(-2000, 2000, n).astype(np.int16)))
        total_in += n
        total_out += len(out)
        assert total_out == math.ceil(total_in * out_rate / in_rate)


def test_irregular_blocks_equal_one_shot():
    rng = np.random.default_rng(7)
    x = rng.integers(-20000, 20000, 24000).astype(np.int16)
    whole = Resampler(24000, 8000).process(x)
    r = Resampler(24000, 8000)
    cuts = np.sort(rng.integers(0, len(x), 60))
    parts = [r.process(p) for p in np.split(x, cuts)]
    assert np.max(np.abs(np.concatenate(parts).astype(int) - whole.astype(int))) <= 1


@pytest.mark.parametrize("in_rate,out_rate", PAIRS)
def test_group_delay_is_low(in_rate, out_rate):
    """Measured delay of a click through the stream resampler: a few ms, not soxr-HQ's 66–96 ms."""
    r = Resampler(in_rate, out_rate)
    x = np.zeros(in_rate // 10, np.int16)
    x[in_rate // 50] = 30000  # click at 20 ms
    y = np.concatenate(framewise(r, x, in_rate // 50)).astype(np.float64)
    # the centre of mass of the response's energy is the group delay of a linear-phase filter
    e = y**2
    centre = float(np.sum(np.arange(len(y)) * e) / np.sum(e)) / out_rate
    delay = centre - 0.020
    assert delay == pytest.approx(r.delay_seconds, abs=1.0 / out_rate + 1.0 / in_rate)
    assert 0 < delay <= 0.005


def test_band_limits():
    # 16 kHz → 8 kHz must not alias a 6 kHz tone into the telephone band
    r = Resampler(16000, 8000)
    y = np.concatenate(framewise(r, np.round(sine(16000, 6000.0, 0.5)).astype(np.int16), 320))
    assert np.max(np.abs(y[400:])) <= 2
    # the telephone band passes nearly flat (≤ 0.5 dB down at 3.4 kHz)
    r = Resampler(8000, 16000)
    y = np.concatenate(framewise(r, np.round(sine(8000, 3400.0, 0.5)).astype(np.int16), 160))
    rms = np.sqrt(np.mean(y[800:].astype(np.float64) ** 2))
    assert 20 * np.log10(rms / (AMP / math.sqrt(2))) > -0.5


def test_passthrough_and_errors():
    r = Resampler(16000, 16000)
    x = np.arange(320, dtype=np.int16)
    np.testing.assert_array_equal(r.process(x), x)
    assert r.delay_seconds == 0
    with pytest.raises(TypeError):
        Resampler(8000, 16000).process(np.zeros(160, np.float32))
    with pytest.raises(ValueError):
        Resampler(0, 8000)


def test_full_scale_input_clips_instead_of_wrapping():
    x = np.tile(np.array([32767] * 8 + [-32768] * 8, np.int16), 40)
    y = Resampler(8000, 16000).process(x)
    # Gibbs overshoot saturates at the int16 limits; a wrap would produce a huge sign flip
    assert np.max(np.abs(np.diff(y.astype(np.int32)))) < 40000


def test_flush_emits_the_tail():
    r = Resampler(8000, 16000)
    x = np.full(160, 10000, np.int16)
    head = r.process(x)
    tail = r.flush()
    assert len(head) == 320
    out = np.concatenate([head, tail])
    # the DC step has fully come out by the end of the flush (it is then followed by the decay)
    assert np.max(out) > 9900
    assert len(tail) >= round(r.delay_seconds * 16000)


def _tone(freq: float, rate: int, seconds: float, amp: float = 8000.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def _stream(r: StreamResampler, x: np.ndarray, block: int = 4096) -> np.ndarray:
    parts = [r.process(x[i : i + block]) for i in range(0, len(x), block)]
    return np.concatenate([*parts, r.flush()])


def test_stream_resampler_keeps_length_pitch_and_rejects_aliases() -> None:
    """Synthesised speech in long blocks (espeak-ng's 22.05 kHz → a call's 8 kHz): every sample comes out
    by the flush, a 1 kHz tone stays at 1 kHz, and a 5 kHz tone (above the 4 kHz the call can carry) is
    filtered out instead of folding back as a 3 kHz alias."""
    r = StreamResampler(22050, 8000)
    y = _stream(r, _tone(1000, 22050, 2.0))
    assert abs(len(y) - 16000) <= 2
    spectrum = np.abs(np.fft.rfft(y[800:-800].astype(np.float64)))
    assert abs(np.argmax(spectrum) * 8000 / (len(y) - 1600) - 1000) < 5
    alias = _stream(StreamResampler(22050, 8000), _tone(5000, 22050, 2.0))
    assert np.sqrt(np.mean(alias[800:-800].astype(np.float64) ** 2)) < 8000 / np.sqrt(2) / 1000  # < -60 dB
    # after a flush the stream starts afresh: the same input gives the same output again
    again = _stream(r, _tone(1000, 22050, 2.0))
    assert np.array_equal(again, y)


def test_stream_resampler_passthrough_and_type() -> None:
    r = StreamResampler(8000, 8000)
    x = _tone(440, 8000, 0.1)
    assert r.passthrough and np.array_equal(r.process(x), x) and len(r.flush()) == 0
    with pytest.raises(TypeError):
        StreamResampler(22050, 8000).process(x.astype(np.float32))
