"""The shared media tick: one plain object steps every call's audio every 20 ms.

`process(now)` takes each stream's new inbound PCM (whole 20 ms frames from its ring), runs Silero VAD at
the line rate when the model has one (8 kHz G.711: 256-sample windows; 16 kHz G.722: 512) — other rates
are resampled to 16 kHz with the stream's own stateful resampler — for every stream that has a full
window, in ONE batched session.run per rate, advances each stream's turn-taking, and returns the turn
events. On a barge-in (INTERRUPT) it flushes that stream's playout ring at once. The transmit side is
`push_tx()` (agent audio in) and `pull_tx()` (what the engine sends next). No awaits, no I/O, no
per-sample Python; the analysed audio is also kept in a per-stream ring (`speech`, at `speech_rate`) for
speech-to-text, which resamples only the utterances it decodes.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field

import numpy as np

from media.blas import single_threaded_blas
from media.endpointing import EndpointingConfig, TurnEvent, TurnEventKind, TurnTaker
from media.resample import Resampler, process_many
from media.ring import AudioRing
from media.vad import WINDOW, SileroModel, VadBank

FRAME_MS = 20
# A window below this level (int16 RMS; 32 ≈ -60 dBFS, a quiet line's noise floor) is silence: the model does not
# run on it. Its probability is 0 and its stream's model state starts afresh, as a new stream's does.
SILENT_RMS = 32.0
# Nor on a window within NOISE_MARGIN_DB of its line's own noise floor, up to NOISE_CAP_RMS (≈ -50 dBFS): a caller who
# listens on a line with some hiss (bench-sip's listening pauses: -54 dBFS) costs no inference either. The floor is
# the level of the quietest window of the last 1.5-1.8 s (minimum statistics: NOISE_BLOCKS blocks of NOISE_BLOCK_MS),
# which the pauses between a talker's words keep at the noise. Speech lies far above it; a line noisier than the cap
# (a street, a car) gets the model on every window.
NOISE_MARGIN_DB = 3.0
NOISE_CAP_RMS = 100.0
NOISE_BLOCK_MS = 256
NOISE_BLOCKS = 6
# How far the VAD may fall behind the line (while its job runs on another thread, the tick goes on reading audio).
# Past it the oldest waiting windows go unanalysed: the stream's audio clock steps over them (counted in
# `MediaStream.vad_dropped`, `MediaTick.vad_dropped`); speech-to-text still gets every sample.
VAD_BACKLOG_MS = 1000
# Each VAD window's level is also measured in this many equal parts (8 ms of a 32 ms window): the endpointer places
# the end of the voice inside the last voiced window by them.
WINDOW_PARTS = 4


_MARGIN = 10.0 ** (NOISE_MARGIN_DB / 20.0)


def vad_rate(line_rate: int) -> int:
    """The rate the VAD runs at for a line rate: the line rate itself where the model has one."""
    return line_rate if line_rate in WINDOW else 16000


@dataclass(frozen=True, slots=True)
class StreamEvent:
    key: Hashable
    event: TurnEvent


class MediaStream:
    """One call's media state. Producers write line-rate PCM into `inbound`; STT reads `speech`."""

    def __init__(
        self,
        key: Hashable,
        in_rate: int,
        out_rate: int,
        slot: int,
        config: EndpointingConfig,
        started_at: float,
        ring_seconds: float,
    ) -> None:
        self.key = key
        self.in_rate, self.out_rate = in_rate, out_rate
        self.frame = in_rate * FRAME_MS // 1000
        self.inbound = AudioRing.for_duration(in_rate, ring_seconds)
        self.outbound = AudioRing.for_duration(out_rate, max(ring_seconds, 30.0))
        self.speech_rate = vad_rate(in_rate)
        self.window = WINDOW[self.speech_rate]
        self.speech = AudioRing.for_duration(self.speech_rate, ring_seconds)
        self.resampler = Resampler(in_rate, self.speech_rate) if in_rate != self.speech_rate else None
        self.turn = TurnTaker(config)
        self.slot = slot
        self.started_at = started_at
        self.samples_analysed = 0  # samples (at speech_rate) analysed so far: the stream's audio clock
        self.last_prob = 0.0
        self.response_active = False  # set by the runtime while a reply is being produced/spoken
        self.tx_played = 0  # agent samples handed to the engine
        self.tx_flushed = 0  # agent samples discarded by barge-in
        # audio waiting for the VAD: whole windows while a VAD job is in flight (bounded: VAD_BACKLOG_MS)
        self._pending = np.zeros(self.window + VAD_BACKLOG_MS * self.speech_rate // 1000, np.int16)
        self._npending = 0
        self._taken = 0  # of those, the samples at the front that the VAD job in flight has
        self._gap = 0  # samples dropped right after them: the clock steps over them when that job is done
        self.vad_dropped = 0  # samples the VAD never analysed: its backlog was full
        self.noise_floor = 0.0  # the line's noise level (RMS of its quietest window lately); 0 before any window
        self._block_windows = max(1, round(NOISE_BLOCK_MS * self.speech_rate / 1000 / self.window))
        self._block = (math.inf, 0)  # the current block's quietest window, and its windows so far
        self._block_mins: deque[float] = deque(maxlen=NOISE_BLOCKS)  # the last whole blocks' quietest windows

    def silent_below(self) -> float:
        """The level under which a window is silence for this line (no model run): SILENT_RMS, or its noise
        floor plus NOISE_MARGIN_DB, capped at NOISE_CAP_RMS."""
        return max(SILENT_RMS, min(self.noise_floor * _MARGIN, NOISE_CAP_RMS))

    def follow_floor(self, rms: float) -> None:
        """One analysed window's level: the noise floor follows a quieter window at once, and forgets the
        quietest ones once they are NOISE_BLOCKS blocks old."""
        low, n = self._block
        low, n = min(low, rms), n + 1
        if n < self._block_windows:
            self._block = (low, n)
            self.noise_floor = low if not self._block_mins else min(self.noise_floor, low)
        else:
            self._block_mins.append(low)
            self._block = (math.inf, 0)
            self.noise_floor = min(self._block_mins)

    def to_backlog(self, pcm: np.ndarray) -> int:
        """Queue analysed-rate audio for the VAD; returns the samples that go unanalysed to make room (the
        backlog is VAD_BACKLOG_MS behind): the oldest whole windows not in the job in flight, or, when that job
        has the whole backlog, this audio itself. The stream's audio clock steps over them."""
        room = len(self._pending) - self._npending
        dropped = self.drop_oldest(len(pcm) - room) if len(pcm) > room else 0
        n = self._npending
        if n + len(pcm) > len(self._pending):
            self._gap += len(pcm)  # right after the job in flight's windows (_taken > 0 here)
            self.vad_dropped += len(pcm)
            return dropped + len(pcm)
        self._pending[n : n + len(pcm)] = pcm
        self._npending = n + len(pcm)
        return dropped

    def drop_oldest(self, need: int) -> int:
        """Make room for `need` samples in the VAD backlog: the oldest whole windows not in the job in flight
        go unanalysed, and the stream's audio clock steps over them. Returns the samples dropped."""
        n, taken, w = self._npending, self._taken, self.window
        drop = min(n - taken, -(-need // w) * w)
        self._pending[taken : n - drop] = self._pending[taken + drop : n]
        self._npending = n - drop
        if taken:
            self._gap += drop  # the job in flight has the windows before them: the clock steps when it is done
        else:
            self.samples_analysed += drop
        self.vad_dropped += drop
        return drop

    @property
    def agent_speaking(self) -> bool:
        return self.response_active or self.outbound.available > 0

    def audio_time(self) -> float:
        return self.started_at + self.samples_analysed / self.speech_rate


@dataclass(slots=True)
class _BankWork:
    """One VAD bank's share of a tick: the ready streams and copies of their windows and model state."""

    bank: VadBank
    streams: list[MediaStream]
    idx: np.ndarray  # the streams' bank slots
    counts: np.ndarray  # whole windows each stream has waiting (more than one only after a late tick)
    windows: np.ndarray  # (streams, max(counts), window) int16
    silent_below: np.ndarray  # each stream's level under which a window is silence (MediaStream.silent_below)
    state: np.ndarray
    ctx: np.ndarray
    probs: list[np.ndarray] = field(default_factory=list)  # per round, for the streams with counts > round
    rms: np.ndarray | None = None  # (streams, max(counts)) each window's level: the endpointer times silences by it
    parts: np.ndarray | None = None  # (streams, max(counts), WINDOW_PARTS) the levels of each window's parts
    silent: int = 0  # windows under their silent_below: no model run


@dataclass(slots=True)
class VadJob:
    """A tick's VAD work, holding copies only: `run()` may execute on another thread (onnxruntime releases
    the GIL) while the event loop goes on; the tick's `finish(job)` applies the results."""

    work: list[_BankWork]

    def run(self) -> None:
        """Per round, the model runs on the windows with sound in them only (above the line's noise): a caller
        who listens (most of a call) costs no inference. A silent window's stream keeps its context (the
        window's tail, for the next window) and gets a zero state."""
        for w in self.work:
            squares = np.square(w.windows, dtype=np.float32)
            w.rms = np.sqrt(np.mean(squares, axis=-1))
            w.parts = np.sqrt(np.mean(squares.reshape(*squares.shape[:2], WINDOW_PARTS, -1), axis=-1))
            context = w.ctx.shape[1]
            for r in range(int(w.counts.max())):
                rows = np.flatnonzero(w.counts > r)
                sound = w.rms[rows, r] >= w.silent_below[rows]
                probs = np.zeros(len(rows), np.float32)
                live, quiet = rows[sound], rows[~sound]
                if len(live):
                    probs[sound], w.state[:, live], w.ctx[live] = w.bank.run_detached(
                        w.state[:, live], w.ctx[live], w.windows[live, r])
                if len(quiet):
                    w.state[:, quiet] = 0.0
                    w.ctx[quiet] = w.windows[quiet, r, -context:] * np.float32(1.0 / 32768.0)
                    w.silent += len(quiet)
                w.probs.append(probs)

    def __bool__(self) -> bool:
        return bool(self.work)


class MediaTick:
    """Holds N streams; `process(now)` advances all of them by what their rings hold (20 ms per tick)."""

    def __init__(self, model: SileroModel | None = None, *, max_frames_per_tick: int = 5) -> None:
        self.model = model or SileroModel()
        self.banks = {rate: VadBank(self.model, rate) for rate in WINDOW}  # one shared session, batched per rate
        self.max_frames_per_tick = max_frames_per_tick
        self._streams: dict[Hashable, MediaStream] = {}
        self.ticks = 0
        self.vad_runs = 0  # batched rounds (one model run per rate, unless all its windows were silent)
        self.vad_windows = 0  # windows analysed
        self.vad_silent = 0  # of those, silent (under their line's MediaStream.silent_below): no model run
        self.vad_dropped = 0  # samples left unanalysed: a stream's VAD backlog was full (VAD_BACKLOG_MS)
        self.vad_dropped_seconds = 0.0  # the same, in seconds of audio (streams differ in rate)

    # -- streams ---------------------------------------------------------------------------------------
    def add_stream(
        self,
        key: Hashable,
        *,
        in_rate: int = 8000,
        out_rate: int | None = None,
        config: EndpointingConfig | None = None,
        now: float = 0.0,
        ring_seconds: float = 2.0,
    ) -> MediaStream:
        if key in self._streams:
            raise KeyError(f"stream {key!r} already exists")
        s = MediaStream(
            key,
            in_rate,
            out_rate or in_rate,
            self.banks[vad_rate(in_rate)].open(),
            config or EndpointingConfig(),
            now,
            ring_seconds,
        )
        self._streams[key] = s
        return s

    def remove_stream(self, key: Hashable) -> None:
        s = self._streams.pop(key)
        self.banks[s.speech_rate].close(s.slot)

    def stream(self, key: Hashable) -> MediaStream:
        return self._streams[key]

    def __len__(self) -> int:
        return len(self._streams)

    def __iter__(self) -> Iterator[MediaStream]:
        return iter(self._streams.values())

    # -- receive side ----------------------------------------------------------------------------------
    def push_rx(self, key: Hashable, pcm: np.ndarray) -> None:
        """Caller audio at the stream's line rate (what the engine read this period)."""
        self._streams[key].inbound.write(pcm)

    def process(self, now: float) -> list[StreamEvent]:
        """One tick for all streams; returns the turn events it produced, in stream order."""
        job = self.prepare(now)
        job.run()
        return self.finish(job)

    def prepare(self, now: float) -> VadJob:
        """The tick's first half, on the owner's thread: `take_inbound`, then `vad_job`."""
        self.take_inbound(now)
        return self.vad_job()

    def take_inbound(self, now: float) -> None:
        """New inbound frames into each stream's speech ring and VAD backlog."""
        self.ticks += 1
        with single_threaded_blas():
            self._take_inbound()

    def vad_job(self) -> VadJob:
        """The VAD work waiting (every stream's whole windows) as a `VadJob` detached from the streams
        (copies), which may run on another thread while the owner goes on; `finish(job)` then applies its
        results. One job at a time: the next is taken after that `finish` (the model state goes with it)."""
        job = VadJob([])
        for rate, bank in self.banks.items():
            ready = [s for s in self._streams.values() if s.speech_rate == rate and s._npending >= s.window]
            if not ready:
                continue
            window = bank.window
            counts = np.array([s._npending // window for s in ready], np.intp)
            windows = np.zeros((len(ready), int(counts.max()), window), np.int16)
            for i, (st, k) in enumerate(zip(ready, counts.tolist(), strict=True)):
                windows[i, :k] = st._pending[: k * window].reshape(k, window)
                st._taken = k * window
            idx = np.array([st.slot for st in ready], np.intp)
            below = np.array([st.silent_below() for st in ready], np.float32)
            state, ctx = bank.gather(idx)
            job.work.append(_BankWork(bank, ready, idx, counts, windows, below, state, ctx))
        return job

    def _take_inbound(self) -> None:
        groups: dict[int, list[MediaStream]] = {}
        for s in self._streams.values():
            # agent speaking state follows the playout (and the runtime's response flag)
            speaking = s.agent_speaking
            if speaking != s.turn.agent_speaking:
                (s.turn.agent_started if speaking else s.turn.agent_stopped)(s.audio_time())
            if s.inbound.available >= s.frame:
                groups.setdefault(s.in_rate, []).append(s)
        for group in groups.values():
            # one 20 ms frame per stream per round, all streams of a rate resampled in one product;
            # later rounds only when a tick came late and streams have more than one frame waiting
            for _ in range(self.max_frames_per_tick):
                if not group:
                    break
                frames = np.empty((len(group), group[0].frame), np.int16)
                for i, s in enumerate(group):
                    s.inbound.read_into(frames[i])
                if group[0].resampler is not None:  # a line rate the model lacks: resample, all at once
                    frames = process_many([s.resampler for s in group], frames)  # type: ignore[misc]
                for s, pcm in zip(group, frames, strict=True):
                    s.speech.write(pcm)
                    dropped = s.to_backlog(pcm)
                    if dropped:
                        self.vad_dropped += dropped
                        self.vad_dropped_seconds += dropped / s.speech_rate
                group = [s for s in group if s.inbound.available >= s.frame]

    def run_ahead(self) -> list[StreamEvent]:
        """Silences ended ahead of the VAD: for each stream inside a silence of the caller's turn, the audio
        read but not yet analysed is measured in 10 ms blocks; the blocks from the analysed clock on that lie
        under the level that could resume the turn (`TurnTaker.quiet_level`) extend the silence at once, so a
        pause or the end of a turn is told on the tick that read its audio, not a VAD job (and up to a
        32 ms window) later. The VAD's windows for that audio then agree (each lies under the same level)."""
        events: list[StreamEvent] = []
        for s in self._streams.values():
            level = s.turn.quiet_level()
            if level is None or s._gap or not s._npending:
                continue
            block = s.speech_rate // 100
            n = s._npending // block
            if not n:
                continue
            blocks = s._pending[: n * block].reshape(n, block)
            loud = np.flatnonzero(np.mean(np.square(blocks, dtype=np.float32), axis=1) >= level * level)
            quiet = int(loud[0]) if len(loud) else n
            if quiet:
                ev = s.turn.quiet_through(s.audio_time() + quiet * block / s.speech_rate)
                if ev is not None:
                    events.append(StreamEvent(s.key, ev))
        return events

    def finish(self, job: VadJob) -> list[StreamEvent]:
        """The tick's second half, on the owner's thread: store the VAD state back (streams removed
        meanwhile are skipped: their slot may already serve a new stream), consume the analysed windows
        and advance each stream's turn-taking, round by round as the windows came."""
        events: list[StreamEvent] = []
        for work in job.work:
            live = np.array([self._streams.get(s.key) is s for s in work.streams], bool)
            if live.any():
                work.bank.scatter(work.idx[live], work.state[:, live], work.ctx[live])
            window = work.bank.window
            dur = window / work.bank.sample_rate
            self.vad_silent += work.silent
            for r, probs in enumerate(work.probs):
                rows = np.flatnonzero(work.counts > r)
                self.vad_runs += 1
                self.vad_windows += len(rows)
                assert work.rms is not None and work.parts is not None  # set by VadJob.run, with the probabilities
                levels = work.rms[rows, r].tolist()
                parts = work.parts[rows, r].tolist()
                for i, p, level, part in zip(rows.tolist(), probs.tolist(), levels, parts, strict=True):
                    if not live[i]:
                        continue
                    s = work.streams[i]
                    rest = s._npending - window
                    s._pending[:rest] = s._pending[window : s._npending]
                    s._npending = rest
                    s.samples_analysed += window
                    s.last_prob = p
                    s.follow_floor(level)
                    for ev in s.turn.update(p, s.audio_time(), dur, level, part):
                        if ev.kind is TurnEventKind.INTERRUPT:
                            self.flush_tx(s.key)
                            s.response_active = False
                        events.append(StreamEvent(s.key, ev))
            for s, alive in zip(work.streams, live.tolist(), strict=True):
                if alive:  # the job's windows are consumed; windows dropped after them are stepped over
                    s.samples_analysed += s._gap
                    s._gap = s._taken = 0
        return events

    # -- transmit side ---------------------------------------------------------------------------------
    def push_tx(self, key: Hashable, pcm: np.ndarray) -> None:
        """Agent audio at the stream's out_rate, queued for playout."""
        self._streams[key].outbound.write(pcm)

    def pull_tx(self, key: Hashable, n: int | None = None) -> np.ndarray:
        """The next `n` samples (default one frame) to send: agent audio, padded with silence."""
        s = self._streams[key]
        n = s.out_rate * FRAME_MS // 1000 if n is None else n
        got = min(n, s.outbound.available)
        s.tx_played += got
        return s.outbound.read_padded(n) if got < n else s.outbound.read(n)

    def peek_tx(self, key: Hashable, n: int) -> np.ndarray:
        """The next `n` samples to send, padded with silence, without taking them: `commit_tx` takes
        what the transport actually accepted (nothing is lost while its media is not up yet)."""
        out = np.zeros(n, np.int16)
        self._streams[key].outbound.peek_into(out)
        return out

    def commit_tx(self, key: Hashable, n: int) -> None:
        """`n` samples of a `peek_tx` were sent: the agent audio among them leaves the playout ring."""
        s = self._streams[key]
        s.tx_played += s.outbound.skip(min(n, s.outbound.available))

    def flush_tx(self, key: Hashable) -> int:
        """Drop queued agent audio (barge-in); returns the samples dropped."""
        s = self._streams[key]
        dropped = s.outbound.clear()
        s.tx_flushed += dropped
        return dropped
