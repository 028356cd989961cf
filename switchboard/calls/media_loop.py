"""The one shared 20 ms media tick over all live calls (DESIGN.md): engine PCM in → media rings,
batched VAD and turn-taking, playout rings → engine PCM out with bounded transmit latency."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Hashable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from media.endpointing import EndpointingConfig
from media.recording import StereoRecorder
from media.tick import FRAME_MS, MediaStream, MediaTick, StreamEvent, VadJob

from ..tasks import TaskSet
from .leg import CallLeg

log = logging.getLogger(__name__)

TX_TARGET_FRAMES = 3  # keep ≤ 60 ms queued in the engine: latency stays bounded, no underruns


@dataclass
class MediaStats:
    """Counters for the benchmark and health: how well the tick keeps up."""

    ticks: int = 0
    late_ticks: int = 0  # ran more than one frame after their slot
    max_lateness_ms: float = 0.0
    rx_reads: int = 0  # stream-ticks
    rx_frames: int = 0  # 20 ms frames received
    rx_empty: int = 0  # stream-ticks that found no new audio
    busy_seconds: float = 0.0  # time spent inside ticks
    vad_jobs: int = 0  # batched VAD jobs applied
    vad_seconds: float = 0.0  # their time from the tick that took them to their results applied
    vad_unanalysed_seconds: float = 0.0  # caller audio the VAD skipped (over its backlog: media.tick.VAD_BACKLOG_MS)


@dataclass
class Leg:
    """One call on the tick."""

    key: Hashable
    call: CallLeg
    rate: int
    recorder: StereoRecorder | None
    on_events: Callable[[list[StreamEvent]], None]
    on_media_timeout: Callable[[], None]
    media_timeout: float
    on_speech: Callable[[np.ndarray], None] | None = None
    tx_silent: bool = True  # what the engine holds is padding only (no agent audio queued)
    last_rx: float = field(default_factory=time.monotonic)
    timed_out: bool = False


class MediaLoop:
    def __init__(self, tick: MediaTick | None = None, *, media_timeout: float = 30.0,
                 vad_executor: Executor | None = None) -> None:
        """``vad_executor``: where the batched VAD runs (default: a thread of the loop's own, started and
        shut down with it); one job at a time is given to it."""
        self.tick = tick or MediaTick()
        self._vad_executor = vad_executor
        self.media_timeout = media_timeout
        self.legs: dict[Hashable, Leg] = {}
        self.stats = MediaStats()
        self._tasks = TaskSet()
        self.on_lateness: Callable[[float], None] | None = None  # ms each step started after its slot
        self.lateness_ms = 0.0  # the current (or last) step's
        self._vad_running: asyncio.Future[None] | None = None

    # -- legs ------------------------------------------------------------------------------------------
    def add(self, key: Hashable, call: CallLeg, *, recorder: StereoRecorder | None,
            on_events: Callable[[list[StreamEvent]], None], on_media_timeout: Callable[[], None],
            on_speech: Callable[[np.ndarray], None] | None = None,
            endpointing: EndpointingConfig | None = None) -> None:
        """Put a call on the tick. ``on_speech`` receives the caller's audio as the VAD analysed it (at the
        stream's ``speech_rate``) each tick, for speech-to-text; ``on_events`` the turn-taking events."""
        rate = call.sample_rate or 8000
        now = time.monotonic()
        self.tick.add_stream(key, in_rate=rate, out_rate=rate, config=endpointing, now=now)
        self.legs[key] = Leg(key, call, rate, recorder, on_events, on_media_timeout, self.media_timeout,
                             on_speech, last_rx=now)

    def stream(self, key: Hashable) -> MediaStream | None:
        return self.tick.stream(key) if key in self.legs else None

    def remove(self, key: Hashable) -> None:
        if self.legs.pop(key, None) is not None:
            self.tick.remove_stream(key)

    def play(self, key: Hashable, pcm: np.ndarray) -> None:
        """Queue agent audio (at the leg's rate) for playout. When a reply starts, the audio is handed over at
        once, not on the next tick; silence padding the engine still holds from a reply that just ended (up to
        ~60 ms the caller would otherwise wait) is dropped first, and the engine takes the new audio once that
        flush is applied (`sipcore.baresip_audio.AudioPort.flush_tx`)."""
        self.tick.push_tx(key, pcm)
        leg = self.legs.get(key)
        if leg is not None:
            if leg.tx_silent:
                leg.call.flush_tx()
            self._top_up(leg)

    def flush(self, key: Hashable) -> int:
        leg = self.legs.get(key)
        if leg is None:
            return 0
        leg.call.flush_tx()
        return self.tick.flush_tx(key)

    # -- the tick --------------------------------------------------------------------------------------
    def start(self) -> None:
        self._tasks.spawn(self._run(), "media-tick")

    async def stop(self) -> None:
        await self._tasks.close()

    async def _run(self) -> None:
        period = FRAME_MS / 1000
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        vad = self._vad_executor or ThreadPoolExecutor(1, thread_name_prefix="media-vad")
        try:
            while True:
                next_at += period
                delay = next_at - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                    lateness = max(0.0, loop.time() - next_at)  # the timer's own wake-up delay
                else:
                    lateness = -delay
                    if lateness > 10 * period:  # fell far behind (a stall): resynchronise, do not burst
                        next_at = loop.time()
                self.stats.late_ticks += lateness > period
                self.stats.max_lateness_ms = max(self.stats.max_lateness_ms, lateness * 1000)
                self.lateness_ms = lateness * 1000
                if self.on_lateness is not None:
                    self.on_lateness(self.lateness_ms)
                started = time.perf_counter()
                try:
                    job = self.begin(time.monotonic())
                    if job:  # the batched VAD runs on its own thread; the next ticks do not wait for it
                        running = loop.run_in_executor(vad, job.run)
                        self._vad_running = running
                        running.add_done_callback(functools.partial(self._vad_done, job, started))
                except Exception:
                    log.exception("media tick failed")
                self.stats.busy_seconds += time.perf_counter() - started
        finally:
            self._vad_running = None  # a job still running is not applied
            if vad is not self._vad_executor:
                vad.shutdown(wait=True, cancel_futures=True)

    def _vad_done(self, job: VadJob, taken: float, running: asyncio.Future[None]) -> None:
        if running is not self._vad_running:
            return  # the tick stopped meanwhile
        self._vad_running = None
        started = time.perf_counter()
        try:
            running.result()
            self.complete(job)
        except Exception:
            log.exception("media tick's VAD failed")
        done = time.perf_counter()
        stats = self.stats
        stats.busy_seconds += done - started
        stats.vad_jobs += 1
        stats.vad_seconds += done - taken

    def step(self, now: float) -> None:
        """One 20 ms step for every leg, all on the calling thread (public so tests can drive it on a
        virtual clock). The running loop splits it: `begin` on the 20 ms clock, the VAD job on its own
        thread, `complete` when the job is done, while the next ticks' `begin` go on reading and sending."""
        job = self.begin(now)
        job.run()
        self.complete(job)

    def begin(self, now: float) -> VadJob:
        """The tick's I/O half: every leg's received PCM in (and to its recording), the caller's audio
        handed to speech-to-text, every leg's transmit buffer topped up; returns the VAD work waiting (none
        while the last job is still running: its windows then wait, bounded, for the next one)."""
        stats = self.stats
        stats.ticks += 1
        for leg in self.legs.values():
            pcm = leg.call.read_pcm()
            stats.rx_reads += 1
            if len(pcm):
                leg.last_rx = now
                stats.rx_frames += len(pcm) // (leg.rate * FRAME_MS // 1000)
                self.tick.push_rx(leg.key, pcm)
                if leg.recorder is not None:
                    leg.recorder.write_caller(pcm)
            else:
                stats.rx_empty += 1
                if not leg.timed_out and leg.media_timeout and now - leg.last_rx > leg.media_timeout:
                    leg.timed_out = True
                    leg.on_media_timeout()
        self.tick.take_inbound(now)
        stats.vad_unanalysed_seconds = self.tick.vad_dropped_seconds
        job = self.tick.vad_job() if self._vad_running is None else VadJob([])
        for leg in self.legs.values():
            if leg.on_speech is not None:
                ring = self.tick.stream(leg.key).speech
                if ring.available:
                    leg.on_speech(ring.read(ring.available))
        self._dispatch(self.tick.run_ahead())  # a silence's end told from the audio's level, ahead of the VAD
        for leg in self.legs.values():
            self._top_up(leg, pad=True)
        return job

    def complete(self, job: VadJob) -> None:
        """The tick's turn-taking half: the VAD's results applied, the turn events handed to their calls."""
        self._dispatch(self.tick.finish(job))

    def _dispatch(self, events: list[StreamEvent]) -> None:
        if events:
            by_key: dict[Hashable, list[StreamEvent]] = {}
            for ev in events:
                by_key.setdefault(ev.key, []).append(ev)
            for key, evs in by_key.items():
                target = self.legs.get(key)
                if target is not None:
                    target.on_events(evs)

    def _top_up(self, leg: Leg, *, pad: bool = False) -> None:
        """Keep the engine's transmit buffer at TX_TARGET_FRAMES of agent audio, the last frame of a reply
        padded with silence on the tick (``pad``); outside the tick only whole frames are handed over.
        While the agent is silent nothing is written: the engine's transmit clock sends silence by itself
        (no native calls, copies or recording work per silent call and tick), and a reply that starts
        finds the engine's buffer empty, so its first frame goes out on the next 20 ms."""
        stream = self.tick.stream(leg.key)
        if not stream.outbound.available:
            leg.tx_silent = True
            return
        frame = leg.rate * FRAME_MS // 1000
        room = TX_TARGET_FRAMES * frame - leg.call.tx_buffered
        if not pad:
            room = min(room, stream.outbound.available)
        if room >= frame:
            leg.tx_silent = False
            out = self.tick.peek_tx(leg.key, (room // frame) * frame)
            taken = leg.call.write_pcm(out)  # 0 until the call's media is up: the audio waits for it
            if taken > 0:
                self.tick.commit_tx(leg.key, taken)
                if leg.recorder is not None:
                    leg.recorder.write_agent(out[:taken])


class LegIO:
    """The media half of what a conversation needs from its call (agents.conversation.CallIO), for one
    leg of the loop: playout, the barge-in flush, playout progress, the responding flag, and call time on
    the tick's audio clock (caller samples analysed: the recording's timeline). Subclasses add the
    call-control half (hangup, transfer, send_dtmf, save_turn)."""

    def __init__(self, media: MediaLoop, key: Hashable, sample_rate: int) -> None:
        self.media, self.key, self.sample_rate = media, key, sample_rate
        self._elapsed = 0  # last known, for after the leg has left the loop
        self._played = 0

    def play(self, pcm: np.ndarray) -> None:
        if self.key in self.media.legs:
            self.media.play(self.key, pcm)

    def flush(self) -> int:
        return self.media.flush(self.key)

    def played_samples(self) -> int:
        stream = self.media.stream(self.key)
        if stream is not None:
            self._played = stream.tx_played
        return self._played

    def set_responding(self, on: bool) -> None:
        stream = self.media.stream(self.key)
        if stream is not None:
            stream.response_active = on

    def end_hint(self, finished: bool | None) -> None:
        stream = self.media.stream(self.key)
        if stream is not None:
            stream.turn.hint(finished)

    def elapsed_ms(self) -> int:
        stream = self.media.stream(self.key)
        if stream is not None:
            self._elapsed = int((stream.audio_time() - stream.started_at) * 1000)
        return self._elapsed

    def call_ms(self, t: float) -> int:
        stream = self.media.stream(self.key)
        return int((t - stream.started_at) * 1000) if stream is not None else self._elapsed
