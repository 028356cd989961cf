"""The media loop's 20 ms clock does not wait for the batched VAD: while the VAD's thread is held (a long
model run, or a thread that gets no core), the ticks go on reading every call's audio, handing it to
speech-to-text and sending; the windows wait (bounded) and the next VAD job analyses them in order, so turn
events still carry the audio's own times."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from media.endpointing import TurnEventKind
from media.tick import VAD_BACKLOG_MS, MediaTick, StreamEvent
from sipcore.loopback import RATE, LoopbackCall
from switchboard.calls.media_loop import MediaLoop
from tests.agents.agent_speech import utterance


async def _until(cond: Callable[[], bool], limit: float = 15.0) -> None:
    """Until the tick's own state shows it (checked once per tick)."""
    deadline = time.monotonic() + limit
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


class _Caller:
    """One loopback call on the media loop, with what the loop handed on."""

    def __init__(self, media: MediaLoop, audio: np.ndarray) -> None:
        self.call = LoopbackCall()
        self.call.answer_now()
        self.call.say(audio)
        self.events: list[StreamEvent] = []
        self.speech: list[np.ndarray] = []
        media.add("c", self.call, recorder=None, on_events=self.events.extend, on_media_timeout=lambda: None,
                  on_speech=self.speech.append)

    def heard_seconds(self) -> float:
        return sum(len(p) for p in self.speech) / RATE

    def kinds(self) -> list[TurnEventKind]:
        return [e.event.kind for e in self.events]


async def test_the_ticks_go_on_while_the_vad_thread_is_held_and_the_late_results_keep_audio_time():
    speech = utterance("I would like to check my account balance please", pad_s=0.05)
    voice_at = np.flatnonzero(np.abs(speech.astype(np.int32)) > 1000)[0] / RATE  # the first loud sample
    gate = threading.Event()
    vad = ThreadPoolExecutor(1, thread_name_prefix="held-vad")
    vad.submit(gate.wait)  # the VAD's one thread is busy until the gate opens
    media = MediaLoop(media_timeout=0, vad_executor=vad)
    caller = _Caller(media, speech)
    media.start()
    try:
        # the caller's audio past the voice's onset reaches speech-to-text with the VAD held (within its backlog)
        assert voice_at + 0.3 < VAD_BACKLOG_MS / 1000
        await _until(lambda: caller.heard_seconds() >= voice_at + 0.3)
        assert media.stats.ticks >= 10 and media.stats.vad_jobs == 0  # the ticks ran; no VAD job came back
        assert caller.events == []  # nothing analysed yet
        stream = media.stream("c")
        assert stream is not None and stream._npending >= int(voice_at * stream.speech_rate)  # the windows wait
        gate.set()
        await _until(lambda: TurnEventKind.USER_STARTED_SPEAKING in caller.kinds())
        started = next(e.event for e in caller.events if e.event.kind is TurnEventKind.USER_STARTED_SPEAKING)
        onset = started.speech_start - stream.started_at  # on the stream's audio clock, not the late result's
        assert voice_at - 0.1 <= onset <= voice_at + 0.25, (onset, voice_at)
        assert media.tick.vad_dropped == 0
        # the backlog is worked off: later jobs find at most a few windows waiting
        jobs = media.stats.vad_jobs
        await _until(lambda: media.stats.vad_jobs >= jobs + 10)
        assert stream._npending < 4 * stream.window
    finally:
        gate.set()
        await media.stop()
        vad.shutdown()


async def test_a_vad_held_past_its_backlog_skips_the_oldest_audio_and_keeps_the_clock():
    gate = threading.Event()
    vad = ThreadPoolExecutor(1, thread_name_prefix="held-vad")
    vad.submit(gate.wait)
    media = MediaLoop(media_timeout=0, vad_executor=vad)
    caller = _Caller(media, np.zeros(0, np.int16))  # line noise only, to begin with
    media.start()
    try:
        limit = VAD_BACKLOG_MS / 1000
        await _until(lambda: caller.heard_seconds() >= limit + 0.5)
        stream = media.stream("c")
        assert stream is not None
        assert stream._npending <= len(stream._pending)  # bounded
        assert media.tick.vad_dropped >= 0.4 * RATE and stream.vad_dropped == media.tick.vad_dropped
        assert media.stats.vad_unanalysed_seconds == pytest.approx(media.tick.vad_dropped / RATE, abs=0.05)
        assert caller.heard_seconds() >= limit + 0.5  # speech-to-text still got every sample
        gate.set()
        speech = utterance("I would like to speak to the agent again", pad_s=0.05)
        voice_at = np.flatnonzero(np.abs(speech.astype(np.int32)) > 1000)[0] / RATE
        said_at = caller.heard_seconds()
        caller.call.say(speech)
        await _until(lambda: TurnEventKind.USER_STARTED_SPEAKING in caller.kinds())
        started = next(e.event for e in caller.events if e.event.kind is TurnEventKind.USER_STARTED_SPEAKING)
        onset = started.speech_start - stream.started_at  # the clock stepped over the skipped audio
        # (a clock that had not stepped over the skipped ~0.5 s would put the onset that much early)
        assert said_at + voice_at - 0.1 <= onset <= said_at + voice_at + 0.3, (onset, said_at, voice_at)
    finally:
        gate.set()
        await media.stop()
        vad.shutdown()


def test_the_vad_backlog_is_bounded_and_the_audio_clock_counts_every_sample():
    """Straight on the tick: a second and more of audio with no job taken, then more while one job is in flight
    (that job holds the whole backlog): the backlog never outgrows its bound, and once the jobs are done the
    stream's clock has counted every sample, analysed or skipped."""
    tick = MediaTick()
    stream = tick.add_stream("a", in_rate=RATE)
    rng = np.random.default_rng(3)
    pushed = 0

    def push(frames: int) -> None:
        nonlocal pushed
        for _ in range(frames):
            tick.push_rx("a", rng.normal(0, 2000, RATE // 50).astype(np.int16))
            tick.take_inbound(0.0)
            pushed += RATE // 50
            assert stream._npending <= len(stream._pending)

    push(75)  # 1.5 s, no VAD job taken: the oldest half second is skipped
    assert stream.vad_dropped >= 0.45 * RATE
    whole = len(stream._pending) // stream.window
    for _ in range(50):  # until the backlog holds as many whole windows as it can
        if stream._npending // stream.window == whole:
            break
        push(1)
    job = tick.vad_job()  # takes the whole backlog
    assert stream._taken == whole * stream.window
    push(60)  # 1.2 s while it is in flight: skipped windows (and frames) land right after its windows
    job.run()
    tick.finish(job)
    job = tick.vad_job()
    job.run()
    tick.finish(job)
    assert stream.samples_analysed + stream._npending == pushed
    assert tick.vad_dropped == stream.vad_dropped
    assert tick.vad_dropped_seconds == pytest.approx(stream.vad_dropped / RATE)
