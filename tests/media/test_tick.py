import numpy as np
import pytest

from media.endpointing import EndpointingConfig, TurnEventKind
from media.resample import Resampler
from media.tick import MediaTick

K = TurnEventKind


@pytest.fixture(scope="module")
def tick_model(vad_model):
    return vad_model


def run(tick: MediaTick, feeds: dict, seconds: float, t0: float = 0.0, on_tick=None):
    """Feed each stream 20 ms per tick from its signal (silence after it ends); collect events."""
    events = []
    for k in range(round(seconds / 0.02)):
        now = t0 + (k + 1) * 0.02
        for key, sig in feeds.items():
            s = tick.stream(key)
            chunk = sig[k * s.frame : (k + 1) * s.frame]
            tick.push_rx(key, np.pad(chunk, (0, s.frame - len(chunk))))
        if on_tick:
            on_tick(k, now)
        events += [(e.key, e.event.kind, now, e.event) for e in tick.process(now)]
    return events


def test_turns_detected_per_stream_with_one_batched_vad_run_per_tick(tick_model, speech_8k, speech_16k):
    tick = MediaTick(tick_model)
    cfg = EndpointingConfig(start_ms=200, stop_ms=600)
    lead8, lead16 = np.zeros(8000, np.int16), np.zeros(16000, np.int16)
    feeds = {
        "g711": np.concatenate([lead8, speech_8k]),
        "g722": np.concatenate([lead16, lead16, speech_16k]),
        "silent": np.zeros(8000 * 10, np.int16),
    }
    tick.add_stream("g711", in_rate=8000, config=cfg)
    tick.add_stream("g722", in_rate=16000, config=cfg)
    tick.add_stream("silent", in_rate=8000, config=cfg)
    events = run(tick, feeds, 8.0)
    by = {k: [(kind, ev) for key, kind, _, ev in events if key == k] for k in feeds}
    assert by["silent"] == []
    for key, lead, sig, rate in (("g711", 1.0, speech_8k, 8000), ("g722", 2.0, speech_16k, 16000)):
        kinds = [k for k, _ in by[key]]
        assert kinds[0] is K.USER_STARTED_SPEAKING and kinds[-1] is K.USER_STOPPED_SPEAKING
        start, end = by[key][0][1], by[key][-1][1]
        assert start.speech_start == pytest.approx(lead, abs=0.15)
        voiced_end = np.flatnonzero(np.abs(sig) > 1000)[-1] / rate  # espeak pads its WAV with silence
        assert end.speech_end == pytest.approx(lead + voiced_end, abs=0.15)
        assert end.at - end.speech_end == pytest.approx(0.6, abs=0.05)
    # 8 s = 250 windows of 32 ms per stream, 3 streams at two line rates (VAD runs at each line rate):
    # one batched session.run per rate per window step
    assert tick.vad_windows == 3 * 250
    assert tick.vad_runs == 2 * 250
    # the analysed audio kept for STT is the caller's line audio itself (no resampling at 8 kHz)
    s = tick.stream("g711")
    assert s.speech_rate == 8000 and s.resampler is None
    assert s.speech.available == s.speech.capacity  # 2 s ring, full
    assert s.inbound.dropped == 0


def test_barge_in_flushes_playout_and_short_backchannel_does_not(tick_model, speech_8k):
    tick = MediaTick(tick_model)
    tick.add_stream("c", in_rate=8000, config=EndpointingConfig(min_interrupt_ms=500))
    # the agent has 10 s of audio queued; the caller says "uh-huh" (250 ms) at 1 s, then talks at 4 s
    agent = np.full(80000, 1000, np.int16)
    tick.push_tx("c", agent)
    caller = np.zeros(8000 * 8, np.int16)
    caller[8000 : 8000 + 2000] = speech_8k[4000:6000]
    caller[32000 : 32000 + len(speech_8k)] = speech_8k
    sent = []
    events = run(tick, {"c": caller}, 7.0, on_tick=lambda k, now: sent.append(tick.pull_tx("c")))
    kinds = [kind for _, kind, _, _ in events]
    assert K.INTERRUPT in kinds and kinds.index(K.INTERRUPT) == kinds.index(K.USER_STARTED_SPEAKING) - 1
    assert kinds[: kinds.index(K.INTERRUPT)] == [K.BACKCHANNEL]
    at = next(now for _, kind, now, _ in events if kind is K.INTERRUPT)
    assert 4.4 <= at <= 4.9
    s = tick.stream("c")
    assert s.outbound.available == 0 and s.tx_flushed > 0
    assert s.tx_played + s.tx_flushed == len(agent)
    sent_arr = np.concatenate(sent)
    played_until = np.flatnonzero(sent_arr)[-1] / 8000
    assert played_until == pytest.approx(at, abs=0.03)  # the agent went silent on the interrupting tick
    assert tick.stream("c").turn.interruptions == 1


def test_non_interruptible_agent_keeps_talking(tick_model, speech_8k):
    tick = MediaTick(tick_model)
    tick.add_stream("c", in_rate=8000, config=EndpointingConfig(interruptible=False))
    tick.push_tx("c", np.full(8000 * 6, 1000, np.int16))
    caller = np.concatenate([np.zeros(8000, np.int16), speech_8k])
    events = run(tick, {"c": caller}, 4.0, on_tick=lambda k, now: tick.pull_tx("c"))
    assert events == []
    assert tick.stream("c").outbound.available == 8000 * 2 and tick.stream("c").tx_flushed == 0


def test_late_tick_catches_up_and_streams_come_and_go(tick_model, speech_8k):
    tick = MediaTick(tick_model)
    tick.add_stream("a", in_rate=8000)
    tick.push_rx("a", speech_8k[:480])  # 60 ms arrived before the tick ran
    tick.process(0.06)
    s = tick.stream("a")
    assert s.inbound.available == 0 and s.speech.available == 480
    assert s.samples_analysed == 256  # one full 8 kHz window analysed, the rest pending
    np.testing.assert_array_equal(s.speech.peek(480), speech_8k[:480])
    slot = s.slot
    tick.remove_stream("a")
    assert tick.add_stream("b").slot == slot
    with pytest.raises(KeyError):
        tick.add_stream("b")
    assert tick.process(0.08) == [] and len(tick) == 1


def test_pull_tx_pads_with_silence_and_counts(tick_model):
    tick = MediaTick(tick_model)
    tick.add_stream("x", in_rate=8000)
    tick.push_tx("x", np.arange(1, 201, dtype=np.int16))
    assert tick.stream("x").agent_speaking
    a, b = tick.pull_tx("x"), tick.pull_tx("x")
    assert len(a) == len(b) == 160 and not b[40:].any()
    np.testing.assert_array_equal(b[:40], np.arange(161, 201))
    assert tick.stream("x").tx_played == 200 and tick.stream("x").outbound.underruns == 1
    assert not tick.stream("x").agent_speaking
    tick.push_tx("x", np.ones(1000, np.int16))
    assert tick.flush_tx("x") == 1000 and tick.stream("x").tx_flushed == 1000


def test_rates_the_model_lacks_are_resampled_to_16k(tick_model, speech_8k):
    tick = MediaTick(tick_model)
    s = tick.add_stream("wide", in_rate=48000)
    assert (s.speech_rate, s.window) == (16000, 512) and s.resampler is not None
    pcm48 = Resampler(8000, 48000).process(speech_8k[:800])  # 100 ms: the 5 frames one tick takes
    tick.push_rx("wide", pcm48)
    tick.process(0.1)
    ref = Resampler(48000, 16000).process(pcm48)
    assert s.speech.available == len(ref) == 1600
    np.testing.assert_array_equal(s.speech.peek(1600), ref)
    assert s.samples_analysed == 3 * 512


def test_the_model_does_not_run_on_silent_windows(tick_model, speech_8k):
    """A caller listening on a quiet line (noise at -66 dBFS) costs no inference; speech after it is detected
    as on a fresh stream, and the probabilities of the silent windows are 0."""
    tick = MediaTick(tick_model)
    rng = np.random.default_rng(3)
    quiet = rng.normal(0, 16, 8000 * 3).astype(np.int16)
    feeds = {"quiet": np.tile(quiet, 3), "talks": np.concatenate([quiet, speech_8k, quiet])}
    for key in feeds:
        tick.add_stream(key, in_rate=8000, config=EndpointingConfig(start_ms=200, stop_ms=600))
    runs = tick_model.runs
    at_3s = {}

    def note(k, now):
        if k == 149:  # 3 s in: both lines quiet so far
            at_3s.update(runs=tick_model.runs, silent=tick.vad_silent, windows=tick.vad_windows)

    events = run(tick, feeds, 9.0, on_tick=note)
    assert at_3s["runs"] == runs and at_3s["silent"] == at_3s["windows"] > 0  # no model run at all
    assert tick_model.runs > runs  # the speech was analysed
    assert [e for e in events if e[0] == "quiet"] == []
    kinds = [kind for key, kind, _, _ in events if key == "talks"]
    assert kinds[0] is TurnEventKind.USER_STARTED_SPEAKING and kinds[-1] is TurnEventKind.USER_STOPPED_SPEAKING
    voiced = np.flatnonzero(np.abs(speech_8k) > 1000)
    start = next(ev for key, kind, _, ev in events if kind is TurnEventKind.USER_STARTED_SPEAKING)
    assert start.speech_start == pytest.approx(3.0 + voiced[0] / 8000, abs=0.15)
    slot = tick.stream("talks").slot
    assert not tick.banks[8000]._state[:, slot].any()  # back in the quiet: a fresh model state


def _hissing_line(seconds: float, std: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(8000 * seconds)
    return np.clip(rng.normal(0, std, n) + rng.normal(0, 20, n), -32768, 32767).astype(np.int16)


def _model_windows(tick: MediaTick) -> int:
    return tick.vad_windows - tick.vad_silent


def test_a_caller_listening_on_a_hissing_line_costs_no_inference_and_their_turns_come_out_the_same(
        tick_model, speech_8k, monkeypatch):
    """Line noise at -54 dBFS (bench-sip's listening pauses: above SILENT_RMS) is learnt as the line's floor
    within its first window; after that a listening caller costs no model run. The caller's turn on that line
    starts and ends where it does with the model run on every window (the floor disabled)."""
    noise = _hissing_line(3.0, 60, 5)
    talk = np.clip(np.concatenate([noise, speech_8k.astype(np.int32) + _hissing_line(len(speech_8k) / 8000, 60, 6),
                                   noise]), -32768, 32767).astype(np.int16)

    def drive():
        tick = MediaTick(tick_model)
        for key in ("listens", "talks"):
            tick.add_stream(key, in_rate=8000, config=EndpointingConfig(start_ms=200, stop_ms=600))
        at_3s = {}

        def note(k, now):
            if k == 149:
                at_3s.update(windows=tick.vad_windows, ran=_model_windows(tick))

        events = run(tick, {"listens": np.tile(noise, 3), "talks": talk}, 9.0, on_tick=note)
        return tick, at_3s, [(key, kind, ev.at) for key, kind, _, ev in events]

    tick, at_3s, events = drive()
    assert 63 < tick.stream("listens").silent_below() < 100  # above the hiss (RMS 63), under the cap
    assert at_3s["windows"] > 180 and at_3s["ran"] <= 4  # the first window of each line, before its floor is known
    ran_talks = _model_windows(tick) - at_3s["ran"]
    assert 0 < ran_talks <= round(len(speech_8k) / 256) + 40  # the speech (and its edges), not 6 s of hiss
    assert [e for e in events if e[0] == "listens"] == []

    monkeypatch.setattr("media.tick.NOISE_CAP_RMS", 0.0)  # every window above SILENT_RMS goes to the model
    ref_tick, _, ref = drive()
    assert _model_windows(ref_tick) > 2 * _model_windows(tick)
    assert [(key, kind) for key, kind, _ in events] == [(key, kind) for key, kind, _ in ref] != []
    assert [kind for _, kind, _ in events][0] is K.USER_STARTED_SPEAKING
    assert [kind for _, kind, _ in events][-1] is K.USER_STOPPED_SPEAKING
    for (_, _, at), (_, _, ref_at) in zip(events, ref, strict=True):
        assert at == pytest.approx(ref_at, abs=0.0325)  # within one window


def test_the_floor_follows_a_line_that_gets_noisier_within_two_seconds(tick_model):
    """The quietest window of the last 1.5-1.8 s is the floor: after a quiet stretch (RMS 20, the gaps in an
    espeak sentence) the line's hiss (RMS 63) is silence again within two seconds, not never."""
    tick = MediaTick(tick_model)
    s = tick.add_stream("c", in_rate=8000)
    ran = []
    feed = np.concatenate([_hissing_line(1.0, 0, 8), _hissing_line(4.0, 60, 9)])
    run(tick, {"c": feed}, 5.0, on_tick=lambda k, now: ran.append(_model_windows(tick)))
    per_second = np.diff(np.array(ran)[::50])  # model windows in each second
    assert per_second[0] == 0  # RMS 20: under SILENT_RMS
    assert per_second[1] > 20  # the hiss is 10 dB over the floor learnt in the quiet: the model judges it
    assert per_second[3] == 0 and 63 < s.silent_below() < 100  # the floor has risen to the hiss


def test_a_line_noisier_than_the_cap_gets_the_model_on_every_window(tick_model):
    """Noise at -40 dBFS (a street) is over NOISE_CAP_RMS: the model judges every window, as without the floor."""
    tick = MediaTick(tick_model)
    tick.add_stream("street", in_rate=8000)
    events = run(tick, {"street": _hissing_line(3.0, 330, 7)}, 3.0)
    assert tick.stream("street").silent_below() == 100.0
    assert tick.vad_windows > 80 and tick.vad_silent == 0
    assert not [e for e in events if e[1] is K.USER_STARTED_SPEAKING]


def test_a_turn_ends_on_the_tick_that_read_its_silence_not_when_the_lagging_vad_gets_there(tick_model, speech_8k):
    """`run_ahead`: with the VAD's jobs held back (one job per 100 ms, as on a busy box), the end of the turn
    still comes on the tick whose audio completes stop_ms of silence under the turn's level — once."""
    def drive(ahead: bool):
        tick = MediaTick(tick_model)
        tick.add_stream("c", in_rate=8000, config=EndpointingConfig(start_ms=200, stop_ms=600, speculate_ms=100))
        sig = np.concatenate([np.zeros(4000, np.int16), speech_8k])
        events, job = [], None
        for k in range(round(6.0 / 0.02)):
            now = (k + 1) * 0.02
            chunk = sig[k * 160 : (k + 1) * 160]
            tick.push_rx("c", np.pad(chunk, (0, 160 - len(chunk))))
            tick.take_inbound(now)
            if ahead:
                events += [(now, e.event) for e in tick.run_ahead()]
            if job is None:
                job = tick.vad_job()
            if k % 5 == 4:  # the VAD thread answers every fifth tick
                job.run()
                events += [(now, e.event) for e in tick.finish(job)]
                job = None
        return events

    for ahead in (True, False):
        events = drive(ahead)
        kinds = [e.kind for _, e in events]
        assert kinds.count(K.USER_STARTED_SPEAKING) == 1 and kinds.count(K.USER_STOPPED_SPEAKING) == 1
        told, stopped = next((t, e) for t, e in events if e.kind is K.USER_STOPPED_SPEAKING)
        assert stopped.at - stopped.speech_end == pytest.approx(0.6, abs=0.04)
        late = told - (stopped.speech_end + 0.6)  # from the audio that completed the silence to the event
        if ahead:
            assert 0 <= late <= 0.02 + 1e-9  # the tick that read it
        else:
            assert late > 0.02  # the VAD's next answer, and its 32 ms windows


def test_a_turn_ends_from_where_the_voice_stopped_inside_a_window(tick_model, speech_8k):
    """Wherever the voice stops inside a 32 ms VAD window (16 placements of the same sentence), the turn's
    speech end lies within one 8 ms part after the sentence's last loud sample, not at the window's end."""
    end = int(np.flatnonzero(np.abs(speech_8k) > 300)[-1]) + 1
    errors = []
    for offset in range(0, 256, 16):
        tick = MediaTick(tick_model)
        tick.add_stream("a", in_rate=8000, config=EndpointingConfig(start_ms=200, stop_ms=600))
        sig = np.concatenate([np.zeros(8000 + offset, np.int16), speech_8k[:end], np.zeros(16000, np.int16)])
        events = run(tick, {"a": sig}, len(sig) / 8000)
        stopped = [ev for _, kind, _, ev in events if kind is K.USER_STOPPED_SPEAKING][-1]
        errors.append(stopped.speech_end - (8000 + offset + end) / 8000)
    assert min(errors) > -0.002 and max(errors) < 0.009, [round(e * 1000, 1) for e in errors]
