import numpy as np

from agents.conversation import CallerTurn

RATE = 16000
TICK = RATE // 50
TAIL = RATE // 100


def voice(n: int) -> np.ndarray:
    t = np.arange(n) / RATE
    return (6000 * np.sin(2 * np.pi * 180 * t)).astype(np.int16)


def hush(n: int) -> np.ndarray:
    return np.random.default_rng(1).normal(0, 20, n).astype(np.int16)


def test_the_voice_falls_on_the_tick_it_ends_in_not_the_next():
    ct = CallerTurn(started=None)
    assert [ct.voice_fell(voice(TICK), TAIL) for _ in range(5)] == [False] * 5
    # the voice stops 8 ms into this tick: its audio goes to the recogniser now
    assert ct.voice_fell(np.concatenate([voice(8 * RATE // 1000), hush(TICK - 8 * RATE // 1000)]), TAIL)
    assert not ct.voice_fell(hush(TICK), TAIL)  # still quiet: no second push
    assert not ct.voice_fell(np.zeros(0, np.int16), TAIL)  # a tick with no audio changes nothing
    assert not ct.voice_fell(voice(TICK), TAIL)  # the voice is back …
    assert ct.voice_fell(hush(TICK), TAIL)  # … and falls again on a whole quiet tick


def test_a_voice_that_ends_on_a_tick_boundary_falls_on_the_next_tick():
    ct = CallerTurn(started=None)
    ct.voice_fell(voice(TICK), TAIL)
    assert not ct.voice_fell(voice(TICK), TAIL)
    assert ct.voice_fell(hush(TICK), TAIL)
