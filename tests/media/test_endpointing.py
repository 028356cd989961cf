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


def turn_events(events):
    """The turn decisions (USER_SILENT, the cue that a silence began, has tests of its own)."""
    return [e for e in events if e.kind is not K.USER_SILENT]


def update(ep, p, now, rms=None):
    """One window; None for no event or USER_SILENT."""
    ev = ep.update(p, now, W, rms)
    return None if ev is None or ev.kind is K.USER_SILENT else ev


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
        events += [(e.kind, round(e.at, 3), e) for e in turn_events(tt.update(p, now))]
    return events


def test_states_and_events_with_start_and_stop_durations():
    ep = Endpointer(EndpointingConfig(start_ms=200, stop_ms=600))
    seen_states = []
    events = []
    for i, p in enumerate(script((1.0, 0.02), (1.5, 0.95), (1.0, 0.02))):
        ev = update(ep, p, (i + 1) * W)
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
    assert all(update(ep, p, (i + 1) * W) is None for i, p in enumerate(probs))
    probs = script((0.5, 0.9), (0.4, 0.05), (0.5, 0.9), (0.7, 0.05))  # a 400 ms pause inside a turn
    kinds = [ev.kind for i, p in enumerate(probs) if (ev := update(ep, p, 10 + (i + 1) * W))]
    assert kinds == [K.USER_STARTED_SPEAKING, K.USER_STOPPED_SPEAKING]


def test_hysteresis_keeps_a_turn_open_between_thresholds():
    ep = Endpointer(EndpointingConfig(start_threshold=0.5, stop_threshold=0.3, start_ms=100, stop_ms=300))
    probs = script((0.3, 0.4), (0.3, 0.9), (1.0, 0.4), (0.5, 0.1))
    events = [(i, ev.kind) for i, p in enumerate(probs) if (ev := update(ep, p, (i + 1) * W))]
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


def windows(*segments: tuple[float, float, float]) -> list[tuple[float, float]]:
    """(seconds, probability, rms) segments → one (probability, rms) per 32 ms window."""
    out: list[tuple[float, float]] = []
    for seconds, p, rms in segments:
        out += [(p, rms)] * round(seconds / W)
    return out


def run_energy(cfg, wins, with_rms=True):
    ep = Endpointer(cfg)
    events = []
    for i, (p, rms) in enumerate(wins):
        ev = ep.update(p, (i + 1) * W, W, rms if with_rms else None)
        if ev:
            events.append(ev)
    return events


# Silero's probability stays high for a while after the voice stops; the level says when it fell.
LAGGING_END = windows((0.64, 0.02, 30), (1.28, 0.95, 3000), (0.16, 0.9, 30), (1.0, 0.02, 30))
VOICE_FELL = 0.64 + 1.28  # where the voice stopped; the VAD only says so 160 ms later


def test_silence_is_timed_from_where_the_voice_fell_not_from_the_lagging_vad():
    cfg = EndpointingConfig(start_ms=200, stop_ms=600, speculate_ms=200)
    ev = run_energy(cfg, LAGGING_END)
    assert [e.kind for e in ev] == [K.USER_STARTED_SPEAKING, K.USER_SILENT, K.USER_PAUSED, K.USER_STOPPED_SPEAKING]
    silent, paused, stopped = ev[1:]
    assert silent.speech_end == pytest.approx(VOICE_FELL) and silent.at == pytest.approx(VOICE_FELL + W)
    assert paused.at == pytest.approx(VOICE_FELL + 0.2, abs=W)
    assert stopped.speech_end == pytest.approx(VOICE_FELL)
    assert stopped.at == pytest.approx(VOICE_FELL + 0.6, abs=W)
    # without levels (VAD only) the same audio ends the turn 160 ms later
    vad_only = [e for e in run_energy(cfg, LAGGING_END, with_rms=False) if e.kind is K.USER_STOPPED_SPEAKING]
    assert vad_only[0].speech_end == pytest.approx(VOICE_FELL + 0.16)
    assert vad_only[0].at - stopped.at == pytest.approx(0.16, abs=1e-6)


def test_a_noisy_line_whose_level_never_falls_is_left_to_the_vad():
    # background noise 20 dB under the voice: inside the 25 dB a window needs to count as silence
    noisy = windows((0.64, 0.02, 300), (1.28, 0.95, 3000), (0.16, 0.9, 300), (1.0, 0.02, 300))
    cfg = EndpointingConfig(start_ms=200, stop_ms=600)
    stopped = [e for e in run_energy(cfg, noisy) if e.kind is K.USER_STOPPED_SPEAKING]
    assert stopped[0].speech_end == pytest.approx(VOICE_FELL + 0.16)


def test_voice_coming_back_resumes_the_turn_but_a_noise_the_vad_rejects_does_not():
    cfg = EndpointingConfig(start_ms=200, stop_ms=600, speculate_ms=200)
    resumed = windows((0.32, 0.02, 30), (0.96, 0.95, 3000), (0.32, 0.9, 30), (0.64, 0.95, 2500), (1.0, 0.02, 30))
    kinds = [e.kind for e in run_energy(cfg, resumed)]
    assert kinds == [K.USER_STARTED_SPEAKING, K.USER_SILENT, K.USER_PAUSED, K.USER_RESUMED, K.USER_SILENT,
                     K.USER_PAUSED, K.USER_STOPPED_SPEAKING]
    # a loud click the VAD does not call speech, inside the silence: the turn still ends on time
    click = windows((0.32, 0.02, 30), (0.96, 0.95, 3000), (0.32, 0.02, 30), (0.064, 0.1, 9000), (1.0, 0.02, 30))
    ev = run_energy(cfg, click)
    assert [e.kind for e in ev] == [K.USER_STARTED_SPEAKING, K.USER_SILENT, K.USER_PAUSED, K.USER_STOPPED_SPEAKING]
    assert ev[-1].speech_end == pytest.approx(0.32 + 0.96)


def test_a_quieter_stretch_of_the_same_voice_is_not_a_silence():
    # the voice drops 15 dB (a soft syllable) but stays inside voice_drop_db of the turn's level
    soft = windows((0.32, 0.02, 30), (0.64, 0.95, 3000), (0.64, 0.9, 530), (1.0, 0.02, 30))
    ev = run_energy(EndpointingConfig(start_ms=200, stop_ms=600, speculate_ms=200), soft)
    assert [e.kind for e in ev].count(K.USER_SILENT) == 1
    assert ev[-1].speech_end == pytest.approx(0.32 + 0.64 + 0.64)


def test_a_soft_onset_after_a_pause_resumes_the_turn_at_once():
    # "…a table [450 ms] for two people": the "f" comes in 24 dB under the turn's level; the VAD hears it.
    # It must end the silence then (hysteresis on the level), not at the vowel after it.
    wins = windows((0.32, 0.02, 30), (0.96, 0.95, 3000), (0.448, 0.02, 30), (0.128, 0.6, 190), (0.64, 0.95, 3000),
                   (1.0, 0.02, 30))
    ev = run_energy(EndpointingConfig(start_ms=200, stop_ms=600, speculate_ms=200), wins)
    kinds = [e.kind for e in ev]
    assert kinds[:4] == [K.USER_STARTED_SPEAKING, K.USER_SILENT, K.USER_PAUSED, K.USER_RESUMED]
    resumed = ev[3]
    assert resumed.at == pytest.approx(0.32 + 0.96 + 0.448 + W)
    assert kinds.count(K.USER_STOPPED_SPEAKING) == 1


def hinted(hint, pause_s):
    """A turn, a pause of `pause_s` (hinted once USER_PAUSED comes, as the transcript of the words so far
    would), more speech, a long silence: the turn decisions."""
    tt = TurnTaker(EndpointingConfig(start_ms=200, stop_ms=600, speculate_ms=100, complete_stop_ms=550,
                                     open_stop_ms=1000))
    probs = script((0.5, 0.0), (1.0, 0.9), (pause_s, 0.0), (1.0, 0.9), (1.5, 0.0))
    events = []
    for i, p in enumerate(probs):
        for e in turn_events(tt.update(p, (i + 1) * W)):
            events.append(e)
            if e.kind is K.USER_PAUSED and not any(x.kind is K.USER_PAUSED for x in events[:-1]):
                tt.hint(hint)  # the first pause's words (the second pause: no hint, the usual stop_ms)
    return events


@pytest.mark.parametrize(("hint", "ends_at"), [(True, 0.55), (None, 0.6), (False, 1.0)])
def test_what_the_caller_said_sets_how_long_a_pause_must_last_to_end_the_turn(hint, ends_at):
    pause = 0.8  # ends a turn at 550 or 600 ms, not at 1000
    events = hinted(hint, pause)
    kinds = [e.kind for e in events]
    if hint is False:  # "… my number is": the caller went on, one turn
        assert kinds == [K.USER_STARTED_SPEAKING, K.USER_PAUSED, K.USER_RESUMED, K.USER_PAUSED,
                         K.USER_STOPPED_SPEAKING]
        last = events[-1]
        assert last.at - last.speech_end == pytest.approx(0.6, abs=W)  # the hint did not outlive its pause
    else:
        assert kinds[:3] == [K.USER_STARTED_SPEAKING, K.USER_PAUSED, K.USER_STOPPED_SPEAKING]
        stopped = events[2]
        assert stopped.at - stopped.speech_end == pytest.approx(ends_at, abs=W)


def test_a_hint_outside_a_pause_is_ignored():
    ep = Endpointer(EndpointingConfig(start_ms=200, stop_ms=600, complete_stop_ms=300))
    ep.hint(True)  # no turn yet (a late transcript): nothing changes
    assert ep.stop_s == pytest.approx(0.6)
    events = [e for i, p in enumerate(script((1.0, 0.9), (1.0, 0.0))) if (e := update(ep, p, (i + 1) * W))]
    assert events[-1].kind is K.USER_STOPPED_SPEAKING
    assert events[-1].at - events[-1].speech_end == pytest.approx(0.6, abs=W)


def test_a_silence_its_level_vouches_for_ends_the_turn_ahead_of_the_vad():
    """`quiet_through`: audio read but not yet analysed that lies under the level that could resume the turn
    extends the silence at once; the VAD's windows for it, when they come, add nothing."""
    cfg = EndpointingConfig(start_ms=200, stop_ms=600, speculate_ms=100, complete_stop_ms=550)
    ep = Endpointer(cfg)
    wins = windows((0.32, 0.02, 30), (0.96, 0.95, 6000))
    for i, (p, rms) in enumerate(wins):
        ep.update(p, (i + 1) * W, W, rms)
    assert ep.state is TurnState.SPEAKING
    assert ep.quiet_through(2.0) is None  # not inside a silence: nothing to extend
    voice_end = len(wins) * W
    silent = ep.update(0.9, voice_end + W, W, 30)  # the VAD lags, the level has fallen: a silence began
    assert silent.kind is K.USER_SILENT and silent.speech_end == pytest.approx(voice_end)
    assert ep.quiet_level() == pytest.approx(6000 * 10 ** (-35 / 20))  # voice_resume_db under the turn's level
    assert ep.quiet_through(voice_end + 0.09) is None
    paused = ep.quiet_through(voice_end + 0.10)
    assert paused.kind is K.USER_PAUSED and paused.at == pytest.approx(voice_end + 0.10)
    assert ep.quiet_through(voice_end + 0.12) is None  # once per silence
    ep.hint(True)  # the words read as finished: 550 ms
    stopped = ep.quiet_through(voice_end + 0.55)
    assert stopped.kind is K.USER_STOPPED_SPEAKING and stopped.speech_end == pytest.approx(voice_end)
    assert stopped.at == pytest.approx(voice_end + 0.55)
    assert ep.state is TurnState.QUIET
    # the VAD's windows for that audio come later (its probability still falling): no second end, no new turn
    late = [ep.update(p, voice_end + (i + 2) * W, W, 30) for i, p in enumerate([0.6, 0.4, 0.2] + [0.02] * 15)]
    assert late == [None] * len(late)


def test_a_silence_is_not_extended_ahead_of_the_vad_while_the_agent_talks():
    tt = TurnTaker(EndpointingConfig(start_ms=200, stop_ms=600))
    for i, p in enumerate(script((1.0, 0.9))):
        tt.update(p, (i + 1) * W, W, 3000)
    tt.update(0.02, 1.0 + W, W, 30)
    assert tt.quiet_level() is not None
    tt.agent_started(1.1)
    assert tt.quiet_level() is None and tt.quiet_through(2.0) is None


def test_the_silence_starts_where_the_voice_fell_inside_the_last_voiced_window():
    """A voice that stops 8 ms into a window: with the window's part levels the silence (and so the pause and
    the turn's end) starts there, 24 ms sooner than at the window's end; without them, at the window's end."""
    cfg = EndpointingConfig(start_ms=200, stop_ms=600, speculate_ms=200)
    voiced = [3000.0] * 4
    last = [3000.0, 30.0, 30.0, 30.0]  # voice for the first 8 ms only
    quiet = [30.0] * 4
    wins = [(0.95, 3000.0, voiced)] * 40 + [(0.95, float(np.sqrt((3000.0**2 + 3 * 30.0**2) / 4)), last)] \
        + [(0.02, 30.0, quiet)] * 30
    voice_fell = 40 * W + W / 4

    def run(with_parts: bool):
        ep = Endpointer(cfg)
        out = []
        for i, (p, rms, parts) in enumerate(wins):
            ev = ep.update(p, (i + 1) * W, W, rms, parts if with_parts else None)
            if ev:
                out.append(ev)
        return {e.kind: e for e in out}

    fine, coarse = run(True), run(False)
    assert fine[K.USER_SILENT].speech_end == pytest.approx(voice_fell)
    assert coarse[K.USER_SILENT].speech_end == pytest.approx(41 * W)
    stop, coarse_stop = fine[K.USER_STOPPED_SPEAKING], coarse[K.USER_STOPPED_SPEAKING]
    assert stop.speech_end == pytest.approx(voice_fell)
    assert stop.at == pytest.approx(voice_fell + 0.6, abs=W) and stop.at < coarse_stop.at
    assert fine[K.USER_PAUSED].at <= coarse[K.USER_PAUSED].at


def test_part_levels_never_move_the_silence_start_past_the_last_voiced_window():
    """A turn whose last voiced window is followed by windows the VAD still calls speech but whose level has
    fallen: the silence starts inside that last voiced window (its last loud part), never earlier."""
    cfg = EndpointingConfig(start_ms=200, stop_ms=600)
    ep = Endpointer(cfg)
    events = []
    seq = [(0.95, 3000.0, [3000.0] * 4)] * 20 + [(0.95, 1500.0, [3000.0, 3000.0, 30.0, 30.0])] \
        + [(0.9, 30.0, [30.0] * 4)] * 5 + [(0.02, 30.0, [30.0] * 4)] * 25
    for i, (p, rms, parts) in enumerate(seq):
        ev = ep.update(p, (i + 1) * W, W, rms, parts)
        if ev:
            events.append(ev)
    silent = next(e for e in events if e.kind is K.USER_SILENT)
    assert silent.speech_end == pytest.approx(20 * W + W / 2)


def test_a_soft_onset_the_vad_does_not_hear_yet_holds_the_end_of_the_turn():
    """The caller goes on after a 480 ms pause with "f…": loud enough to be voice, but the VAD only calls it
    speech 100 ms in. The turn resumes instead of ending 550 ms into the pause; without the hold it ends."""
    def run(hold_ms: float):
        cfg = EndpointingConfig(start_ms=200, stop_ms=550, speculate_ms=100, onset_hold_ms=hold_ms)
        wins = windows((0.64, 0.95, 3000), (0.48, 0.02, 30), (0.128, 0.1, 400), (0.5, 0.95, 3000))
        return [e.kind for e in run_energy(cfg, wins)]

    held = run(150.0)
    assert K.USER_RESUMED in held and K.USER_STOPPED_SPEAKING not in held
    assert K.USER_STOPPED_SPEAKING in run(0.0)


def test_a_noisy_line_is_not_held_its_turn_ends_on_time():
    """Line noise louder than the level that could resume a turn, from the silence's start on: the hold has
    run out long before the turn's end is due, which comes when it did without one."""
    wins = windows((0.64, 0.95, 3000), (1.0, 0.02, 400))
    ends = []
    for hold_ms in (150.0, 0.0):
        cfg = EndpointingConfig(start_ms=200, stop_ms=550, onset_hold_ms=hold_ms)
        ends.append(next(e.at for e in run_energy(cfg, wins) if e.kind is K.USER_STOPPED_SPEAKING))
    assert ends[0] == pytest.approx(ends[1]) and ends[0] == pytest.approx(0.64 + 0.55, abs=W)
