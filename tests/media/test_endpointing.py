import numpy as np
import pytest

from media.endpointing import Endpointer, EndpointingConfig, TurnEventKind, TurnState, TurnTaker

W = 0.032  # one Silero window
K = TurnEventKind


def script(*segments: tuple[float, float]) -> list[float]:
    """(seconds, probability) segments → one probability per 32 ms window."""
    probs: list[float] = []
    for seconds, p in segments:
        probs += [p] * round(seconds / W)
    return probs


def drive(tt, probs, t0=0.0, agent=None):
    """Feed windows on a virtual clock; `agent` = list of (start, stop) times the agent talks."""
    events = []
    agent = agent or []
    for i, p in enumerate(probs):
        now = t0 + (i + 1) * W
        for a0, a1 in agent:
            if a0 <= now - W < a0 + W - 1e-9:
                tt.agent_started(now - W)
            if a1 <= now - W < a1 + W - 1e-9 and tt.agent_speaking:
                tt.agent_stopped(now - W)
        events += [(e.kind, round(e.at, 3), e) for e in tt.update(p, now)]
    return events


def test_states_and_events_with_start_and_stop_durations():
    ep = Endpointer(EndpointingConfig(start_ms=200, stop_ms=600))
    seen_states = []
    events = []
    for i, p in enumerate(script((1.0, 0.02), (1.5, 0.95), (1.0, 0.02))):
        ev = ep.update(p, (i + 1) * W)
        seen_states.append(ep.state)
        if ev:
            events.append(ev)
    assert [e.kind for e in events] == [K.USER_STARTED_SPEAKING, K.USER_STOPPED_SPEAKING]
    start, stop = events
    # speech begins at window 31 (t=0.992); the turn starts once it has lasted 200 ms
    assert start.speech_start == pytest.approx(31 * W)
    assert start.at - start.speech_start == pytest.approx(0.224, abs=W)
    assert stop.speech_end == pytest.approx((31 + 47) * W)
    assert stop.at - stop.speech_end == pytest.approx(0.6, abs=W)
    order = [s for i, s in enumerate(seen_states) if i == 0 or s != seen_states[i - 1]]
    assert order == [
        TurnState.QUIET,
        TurnState.STARTING,
        TurnState.SPEAKING,
        TurnState.STOPPING,
        TurnState.QUIET,
    ]


def test_blips_shorter_than_start_do_not_start_a_turn_and_pauses_do_not_end_it():
    ep = Endpointer(EndpointingConfig(start_ms=200, stop_ms=600))
    probs = script((0.5, 0), (0.1, 0.9), (0.5, 0), (0.1, 0.9), (0.5, 0))  # two 96 ms clicks
    assert all(ep.update(p, (i + 1) * W) is None for i, p in enumerate(probs))
    probs = script((0.5, 0.9), (0.4, 0.05), (0.5, 0.9), (0.7, 0.05))  # a 400 ms pause inside a turn
    kinds = [ev.kind for i, p in enumerate(probs) if (ev := ep.update(p, 10 + (i + 1) * W))]
    assert kinds == [K.USER_STARTED_SPEAKING, K.USER_STOPPED_SPEAKING]


def test_hysteresis_keeps_a_turn_open_between_thresholds():
    ep = Endpointer(EndpointingConfig(start_threshold=0.5, stop_threshold=0.3, start_ms=100, stop_ms=300))
    probs = script((0.3, 0.4), (0.3, 0.9), (1.0, 0.4), (0.5, 0.1))
    events = [(i, ev.kind) for i, p in enumerate(probs) if (ev := ep.update(p, (i + 1) * W))]
    assert [k for _, k in events] == [K.USER_STARTED_SPEAKING, K.USER_STOPPED_SPEAKING]
    assert events[1][0] * W > 1.6  # only after the probability fell below 0.3


def test_barge_in_interrupts_an_interruptible_agent():
    tt = TurnTaker(EndpointingConfig(min_interrupt_ms=500))
    probs = script((1.0, 0.0), (1.5, 0.9), (1.0, 0.0))
    events = drive(tt, probs, agent=[(0.5, 5.0)])
    kinds = [k for k, _, _ in events]
    assert kinds == [K.INTERRUPT, K.USER_STARTED_SPEAKING, K.USER_STOPPED_SPEAKING]
    interrupt = events[0][2]
    assert interrupt.speech_start == pytest.approx(1.0, abs=W)
    assert interrupt.at - interrupt.speech_start == pytest.approx(0.5, abs=W)
    assert not tt.agent_speaking and tt.interruptions == 1
    assert events[2][2].speech_start == pytest.approx(1.0, abs=W)  # the turn keeps its real start


@pytest.mark.parametrize("backchannel_ms", [150, 300, 450])
def test_short_backchannels_do_not_interrupt(backchannel_ms):
    tt = TurnTaker(EndpointingConfig(min_interrupt_ms=500))
    probs = script(
        (1.0, 0.0), (backchannel_ms / 1000, 0.9), (1.0, 0.0), (backchannel_ms / 1000, 0.9), (1.0, 0)
    )
    events = drive(tt, probs, agent=[(0.5, 10.0)])
    assert [k for k, _, _ in events] == [K.BACKCHANNEL, K.BACKCHANNEL]
    assert tt.agent_speaking and tt.interruptions == 0 and tt.backchannels == 2


def test_non_interruptible_agent_ignores_speech_while_talking():
    tt = TurnTaker(EndpointingConfig(interruptible=False))
    probs = script((1.0, 0.0), (3.0, 0.9), (1.0, 0.0))
    events = drive(tt, probs, agent=[(0.5, 3.0)])
    # nothing while the agent talks; the speech still going on after it stops starts a turn then
    kinds = [(k, at) for k, at, _ in events]
    assert [k for k, _ in kinds] == [K.USER_STARTED_SPEAKING, K.USER_STOPPED_SPEAKING]
    assert kinds[0][1] >= 3.0 + 0.2
    assert tt.interruptions == 0


def test_thirty_second_conversation_on_a_virtual_clock():
    """Agent greets; user answers; agent replies; user backchannels then barges in; agent finishes."""
    rng = np.random.default_rng(0)
    probs = script(
        (2.0, 0.0),  # agent greeting 0–2 s, user quiet
        (1.0, 0.0),
        (3.0, 0.95),  # user turn 3–6 s
        (1.0, 0.0),  # agent answers from 6.6 s
        (3.0, 0.0),
        (0.3, 0.9),  # "uh-huh" at 10 s over the agent
        (3.0, 0.0),
        (2.0, 0.9),  # barge-in at 13.3 s
        (1.0, 0.0),  # agent replies again 15.6 s → 25 s, user silent
        (15.0, 0.0),
    )
    probs = [min(1.0, max(0.0, p + rng.normal(0, 0.05))) for p in probs]
    tt = TurnTaker(EndpointingConfig(start_ms=200, stop_ms=600, min_interrupt_ms=500))
    agent = [(0.0, 2.0), (6.7, 16.0), (16.3, 25.0)]
    events = drive(tt, probs, agent=agent)
    kinds = [(k.value, at) for k, at, _ in events]
    names = [k for k, _ in kinds]
    assert names == [
        "user_started_speaking",
        "user_stopped_speaking",
        "backchannel",
        "interrupt",
        "user_started_speaking",
        "user_stopped_speaking",
    ]
    at = dict(zip(names, [a for _, a in kinds], strict=False))
    assert at["interrupt"] == pytest.approx(13.3 + 0.5, abs=2 * W)
    assert kinds[1][1] == pytest.approx(6.0 + 0.6, abs=2 * W)


# -- speculation: USER_PAUSED at a short silence, USER_RESUMED if speech comes back, the stop confirms ---------


def spec_events(probs, **cfg):
    tt = TurnTaker(EndpointingConfig(start_ms=200, stop_ms=600, speculate_ms=250, **cfg))
    return [(k, at, e) for k, at, e in drive(tt, probs)]


def test_a_short_pause_inside_a_turn_emits_nothing_extra():
    events = spec_events(script((0.5, 0.0), (1.0, 0.9), (0.2, 0.0), (1.0, 0.9), (1.0, 0.0)))
    # the 200 ms pause is below speculate_ms; the final silence speculates, then confirms
    assert [k for k, _, _ in events] == [K.USER_STARTED_SPEAKING, K.USER_PAUSED, K.USER_STOPPED_SPEAKING]


def test_a_longer_pause_speculates_then_resumes_and_the_end_is_confirmed_at_stop_ms():
    events = spec_events(script((0.5, 0.0), (1.0, 0.9), (0.4, 0.0), (1.0, 0.9), (1.0, 0.0)))
    kinds = [k for k, _, _ in events]
    assert kinds == [K.USER_STARTED_SPEAKING, K.USER_PAUSED, K.USER_RESUMED, K.USER_PAUSED,
                     K.USER_STOPPED_SPEAKING]
    paused, resumed, paused2, stopped = (e for _, _, e in events[1:])
    # each pause is announced 250 ms into the silence, the end only after 600 ms of it
    assert paused.at - paused.speech_end == pytest.approx(0.25, abs=W)
    assert resumed.speech_end == paused.speech_end and resumed.at < paused.speech_end + 0.6
    assert paused2.speech_end == pytest.approx(1.5 + 1.4, abs=W)
    assert stopped.speech_end == paused2.speech_end
    assert stopped.at - stopped.speech_end == pytest.approx(0.6, abs=W)
    assert stopped.speech_start == paused.speech_start  # one turn, from its first word


def test_speculation_is_off_by_default_and_never_reaches_the_stop():
    tt = TurnTaker(EndpointingConfig(start_ms=200, stop_ms=600))
    kinds = [k for k, _, _ in drive(tt, script((0.5, 0.0), (1.0, 0.9), (0.4, 0.0), (1.0, 0.9), (1.0, 0.0)))]
    assert K.USER_PAUSED not in kinds and K.USER_RESUMED not in kinds
    tt = TurnTaker(EndpointingConfig(start_ms=200, stop_ms=300, speculate_ms=300))  # not shorter than the stop
    kinds = [k for k, _, _ in drive(tt, script((0.5, 0.0), (1.0, 0.9), (1.0, 0.0)))]
    assert kinds == [K.USER_STARTED_SPEAKING, K.USER_STOPPED_SPEAKING]


def test_a_barge_in_starts_a_fresh_turn_without_a_stale_pause():
    tt = TurnTaker(EndpointingConfig(start_ms=200, stop_ms=600, speculate_ms=250, min_interrupt_ms=500))
    probs = script((0.5, 0.0), (1.0, 0.9), (0.3, 0.0))  # caller talks, pauses (speculation) …
    events = drive(tt, probs)
    assert [k for k, _, _ in events][-1] is K.USER_PAUSED
    t0 = len(probs) * W
    tt.agent_started(t0)  # … the agent starts, the caller barges in and then stops
    events = drive(tt, script((1.0, 0.9), (1.0, 0.0)), t0=t0)
    assert [k for k, _, _ in events] == [K.INTERRUPT, K.USER_STARTED_SPEAKING, K.USER_PAUSED,
                                         K.USER_STOPPED_SPEAKING]
