"""The shared local recogniser's bounded queue, and the worker's overload flag and admission check, on a
virtual clock."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from agents.stt_load import SttLoad, load_of
from switchboard.calls.overload import Overload


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_utterances_beyond_the_bound_are_shed_and_counted():
    clock = Clock()
    load = SttLoad(max_pending=3, clock=clock)
    tickets = [load.begin() for _ in range(3)]
    assert all(t is not None for t in tickets) and load.pending == 3
    assert load.begin() is None and load.begin() is None  # the queue is full: shed, not queued
    assert load.stats.shed == 2 and load.overloaded
    clock.t += 0.4
    assert load.end(tickets[0]) == pytest.approx(400.0)
    assert load.begin() is not None  # room again
    clock.t += 10  # the shed is out of the window; nothing is slow any more
    for t in tickets[1:]:
        load.end(t, completed=False)
    assert load.snapshot()["shed"] == 2 and load.snapshot()["completed"] == 1


def test_slow_decoding_degrades_to_the_grammar_and_recovers_with_hysteresis():
    clock = Clock()
    load = SttLoad(max_pending=8, degrade_ms=1000, window_s=5, clock=clock)
    for _ in range(3):
        t = load.begin()
        clock.t += 1.5  # each decode took 1.5 s
        load.end(t)
    assert load.degraded and load.overloaded
    for _ in range(3):
        t = load.begin()
        clock.t += 0.4  # fast again, but the window's median (1.5 s ×3, 0.4 s ×3) is still over half of 1 s
        load.end(t)
    assert load.degraded
    clock.t += 4  # the slow ones leave the window
    assert not load.degraded  # 400 ms < 500 ms: back to full decoding
    t = load.begin()
    clock.t += 0.7  # 700 ms: under degrade_ms, so it does not degrade again
    load.end(t)
    assert not load.degraded
    clock.t += 6
    t = load.begin()
    clock.t += 0.2
    load.end(t)
    assert not load.degraded and not load.overloaded
    assert load.stats.degraded_utterances >= 3


def test_a_decode_slower_than_the_window_still_counts():
    clock = Clock()
    load = SttLoad(max_pending=8, degrade_ms=1000, window_s=5, clock=clock)
    load.begin()
    clock.t += 0.5
    assert not load.degraded
    clock.t += 1.0  # waiting 1.5 s with no final: slow
    assert load.degraded


def test_half_a_queue_is_degraded_already():
    load = SttLoad(max_pending=4, clock=Clock())
    load.begin(), load.begin()
    assert not load.degraded
    load.begin()
    assert load.degraded


def test_overload_attaches_a_load_to_the_shared_recogniser():
    class Recogniser:
        pass

    stt = Recogniser()
    overload = Overload(stt)
    assert load_of(stt) is overload.stt_load is not None
    assert Overload(stt).stt_load is overload.stt_load  # one load per recogniser


def test_admission_refuses_before_frames_slip_and_health_reports_degraded():
    overload = Overload(None, refuse_ms=15, degraded_ms=20, late_share=0.01, window_s=5, admission=True)
    for _ in range(250):
        overload.record_lateness(2.0)
    assert overload.admit() and not overload.degraded
    for _ in range(5):  # 2 % of wake-ups 16 ms late: not slipping yet, but refuse new calls
        overload.record_lateness(16.0)
    assert not overload.degraded
    assert not overload.admit() and overload.refused == 1
    assert "late" in (overload.refusal_reason() or "")
    for _ in range(5):  # now frames slip (> 20 ms): degraded
        overload.record_lateness(30.0)
    assert overload.degraded and overload.snapshot()["degraded"] is True
    for _ in range(250):
        overload.record_lateness(1.0)
    assert overload.admit() and not overload.degraded


def test_an_overloaded_recogniser_degrades_and_refuses_calls_only_when_asked_to():
    clock = Clock()

    class Recogniser:
        pass

    stt = Recogniser()
    stt.stt_load = SttLoad(max_pending=1, clock=clock)  # type: ignore[attr-defined]
    overload = Overload(stt, admission=True, refuse_on_stt=False)
    stt.stt_load.begin()  # type: ignore[attr-defined]
    assert overload.stt_overloaded and overload.degraded
    assert overload.admit()  # the audio is on time: the call is taken, its turns degrade (counted)
    strict = Overload(stt, admission=True, refuse_on_stt=True)
    assert not strict.admit() and "speech-to-text" in (strict.refusal_reason() or "")
    relaxed = Overload(stt, admission=False, refuse_on_stt=True)
    assert relaxed.admit() and relaxed.refused == 0


async def test_the_probe_measures_a_blocked_event_loop():
    import time

    overload = Overload(None, window_s=1)
    overload.start()
    try:
        await asyncio.sleep(0.1)
        time.sleep(0.08)  # block the loop as a stalled tick would  # noqa: ASYNC251
        await asyncio.sleep(0.1)
        assert overload.snapshot()["loop_lateness_ms"]["max"] >= 50
    finally:
        await overload.stop()


def test_an_idle_worker_is_not_refused_for_a_late_event_loop():
    """Start-up and warm-up make the loop late with no call up: there is no audio to protect, so the first
    call is answered; once calls are up, the same lateness refuses the next one."""
    calls = [0]
    overload = Overload(None, refuse_ms=15, late_share=0.01, window_s=5, admission=True,
                        active_calls=lambda: calls[0])
    for _ in range(50):
        overload.record_lateness(40.0)
    assert overload.admit()
    calls[0] = 1
    assert not overload.admit() and "late" in (overload.refusal_reason() or "")


async def test_the_media_tick_reports_its_lateness_to_admission():
    """Admission listens to the tick itself: a step that starts late is what makes frames slip."""
    import time

    from switchboard.calls.media_loop import MediaLoop

    overload = Overload(None, admission=True, active_calls=lambda: 3, window_s=1)
    media = MediaLoop()
    reporting = asyncio.Event()

    def observe(ms: float) -> None:
        overload.observe_tick(ms)
        reporting.set()

    media.on_lateness = observe
    overload.start(fed_by_tick=True)
    media.start()
    try:
        await asyncio.wait_for(reporting.wait(), 10)  # the tick is running and reporting
        time.sleep(0.15)  # noqa: ASYNC251 - the loop blocked: the next step starts ~150 ms late
        for _ in range(100):
            if max(overload._lateness) >= 100:
                break
            await asyncio.sleep(0.02)
        assert max(overload._lateness) >= 100
        assert not overload.admit() and "late" in (overload.refusal_reason() or "")
        await overload.stop()
        before = len(overload._lateness)
        await asyncio.sleep(0.1)
        assert len(overload._lateness) == before  # stopped: the tick's reports are no longer taken
    finally:
        await media.stop()


def test_a_passed_blip_does_not_refuse_calls_for_the_whole_window():
    """Nine late steps in a burst (a moment's contention) put 3.6 % of a 5 s window over the limit: new calls are
    refused while it lasts, and answered again once a second has passed on time, not for the rest of the window."""
    overload = Overload(None, refuse_ms=15, late_share=0.01, window_s=5, admission=True, active_calls=lambda: 40)
    for _ in range(200):
        overload.record_lateness(1.0)
    for _ in range(9):
        overload.record_lateness(30.0)
    assert not overload.admit()
    for _ in range(50):  # one second of steps on time
        overload.record_lateness(1.0)
    assert overload.late_share_over(15) > 0.01  # still in the window...
    assert overload.admit()  # ...but over: the call is taken


def test_lateness_that_keeps_coming_back_refuses_calls_after_each_blip_has_passed():
    """Talking callers on a saturated worker: a few late steps every second or so. Each burst passes within a
    second, but they recur: that is load, and new calls stay refused between the bursts."""
    overload = Overload(None, refuse_ms=15, late_share=0.01, window_s=5, admission=True, active_calls=lambda: 40)
    for _ in range(3):
        for _ in range(48):
            overload.record_lateness(1.0)
        for _ in range(2):
            overload.record_lateness(30.0)
    for _ in range(50):  # the last second on time
        overload.record_lateness(1.0)
    assert not overload.admit() and "late" in (overload.refusal_reason() or "")
    for _ in range(100):  # two more seconds on time: two late seconds left in the window (1.6 % of its steps)
        overload.record_lateness(1.0)
    assert overload.late_share_over(15) > 0.01
    assert overload.admit()


def test_the_late_shares_kept_per_sample_match_a_count_of_the_window():
    """The shares over the two thresholds are kept as samples enter and leave the window (the degraded check
    runs on every tick); they equal a count over the window at every step, also once the window wraps."""
    rng = np.random.default_rng(7)
    overload = Overload(None, refuse_ms=15, degraded_ms=20, late_share=0.01, window_s=0.5, admission=True)
    for ms in rng.choice([0.0, 5.0, 15.0, 16.0, 20.0, 25.0], size=200):
        overload.record_lateness(float(ms))
        window = list(overload._lateness)
        for limit in (15, 20):
            assert overload.late_share_over(limit) == sum(x > limit for x in window) / len(window)
    assert len(window) == 25
