"""The conversation runtime for one call: caller turns in, agent replies out.

Driven by the call session: ``on_speech`` (caller audio each media tick), ``on_turn_event`` (VAD
turn-taking: user started/stopped speaking, interrupt, backchannel) and ``on_dtmf``. Everything else
happens on the conversation's one task: speech-to-text of each finished utterance, the response engine,
sentence-by-sentence speech synthesis into the playout ring, tools, DTMF rules, inactivity, and the
transcript and latency records. Sync callbacks never block: they queue work for that task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from media.endpointing import TurnEvent, TurnEventKind
from media.resample import StreamResampler
from media.tick import vad_rate

from .config import AgentConfig
from .dtmf import DtmfAction, DtmfMatcher
from .engines import ResponseEngine
from .llm_turn import TurnEvent as EngineEvent
from .providers.base import ProviderError, SpeechToText, TextDelta, TextToSpeech, Transcript, Usage
from .providers.phrase_cache import PhraseCache
from .sentences import SentenceSplitter
from .stt_load import SttLoad, load_of
from .templates import render
from .tools import ToolOutcome
from .turn_end import reads_finished
from .turns import AgentTurn, TurnMetrics, summarize

log = logging.getLogger(__name__)

PREROLL_SECONDS = 0.6  # audio kept before "user started speaking" fires (it fires start_ms late)
APOLOGY = "Sorry, I'm having trouble right now. Please try again in a moment."
STT_APOLOGY = "Sorry, I didn't catch that. Could you say it again?"
MAX_STT_FAILURES = 3  # per call; after that the conversation stops listening (recorded)
STREAM_PUSH_SECONDS = 0.1  # a streaming recogniser gets the caller's audio in blocks this long, as it comes
VOICE_FALL = 10.0 ** (-20.0 / 20.0)  # ... and at once when a tick's level falls this far (-20 dB) under the turn's
VOICE_TAIL_SECONDS = 0.01  # ... judged on each tick's last 10 ms: a voice that ends inside a tick goes on that tick


@dataclass(eq=False)
class CallerTurn:
    """One caller turn, from USER_STARTED_SPEAKING to its confirmed end, and what STT made of it.

    A streaming recogniser gets the audio as it comes and is flushed at each pause (USER_PAUSED) and at
    the confirmed end; its finals are joined. Other recognisers get the whole turn at the confirmed end."""

    started: TurnEvent | None
    audio: list[np.ndarray] = field(default_factory=list)  # not yet handed to STT
    audio_samples: int = 0
    resampler: StreamResampler | None = None
    segments: list[str] = field(default_factory=list)  # final transcripts of the flushed parts
    flushes: int = 0
    finals: int = 0
    unflushed: bool = False  # audio went to STT since the last flush
    confirmed: TurnEvent | None = None  # USER_STOPPED_SPEAKING
    paused: TurnEvent | None = None  # the current USER_PAUSED (None once the caller resumed)
    shed: bool = False  # the recogniser was overloaded: nothing of this turn is transcribed
    stt_latency_ms: float | None = None
    first_flush_at: float | None = None
    level: float = 0.0  # the loudest tick (RMS) so far: a tick far under it is where the voice fell
    quiet: bool = False  # the last tick ended that far under it

    def voice_fell(self, pcm: np.ndarray, tail: int) -> bool:
        """One tick of the caller's audio: True on the tick where the voice fell (its last ``tail`` samples
        VOICE_FALL under the loudest tick so far, the tick before them not), so that what was said goes to the
        recogniser on that tick, not on the next."""
        low = _rms(pcm[-tail:]) < self.level * VOICE_FALL if len(pcm) else self.quiet
        fell, self.quiet = low and not self.quiet, low
        self.level = max(self.level, _rms(pcm))
        return fell

    @property
    def text(self) -> str:
        return " ".join(t for t in self.segments if t).strip()

    @property
    def transcribed(self) -> bool:
        """Every flushed part has its final and no audio waits for a flush."""
        return self.finals >= self.flushes and not self.unflushed


@dataclass(eq=False)
class Speculation:
    """A reply prepared at a pause, held (not played) until the endpointer confirms the turn's end."""

    turn: CallerTurn
    text: str
    held: list[np.ndarray] = field(default_factory=list)
    history: int | None = None  # the engine's message count before it (rolled back when discarded)
    metrics: TurnMetrics | None = None
    confirmed: asyncio.Event = field(default_factory=asyncio.Event)
    discarded: bool = False
    released: bool = False
    agent_turn: AgentTurn | None = None


class _ConfirmedTools:
    """An engine's tools during a speculative reply: a tool runs only once the turn is confirmed (side
    effects never happen for a speculation that is discarded)."""

    def __init__(self, tools: Any, confirmed: asyncio.Event) -> None:
        self._tools, self._confirmed = tools, confirmed

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tools, name)

    async def run(self, call: Any) -> Any:
        await self._confirmed.wait()
        return await self._tools.run(call)


class CallIO(Protocol):
    """What the conversation needs from its call (the session implements it)."""

    sample_rate: int

    def play(self, pcm: np.ndarray) -> None: ...
    def flush(self) -> int: ...
    def played_samples(self) -> int: ...
    def set_responding(self, on: bool) -> None: ...
    def end_hint(self, finished: bool | None) -> None:
        """What the caller said before the current pause reads as finished or not (agents.turn_end): the
        endpointer's wait for this silence (media.endpointing: `Endpointer.hint`)."""
        ...
    def elapsed_ms(self) -> int:
        """Call time now, in ms: the media tick's audio clock (the recording's timeline)."""
        ...

    def call_ms(self, t: float) -> int:
        """A turn event's time (the tick's audio clock) as call time in ms."""
        ...
    async def hangup(self, reason: str) -> None: ...
    async def transfer(self, target: str) -> None: ...
    async def send_dtmf(self, digits: str) -> None: ...
    async def save_turn(self, turn: dict[str, Any]) -> None: ...
    async def record_event(self, kind: str, detail: dict[str, Any]) -> None:
        """A call event beside the transcript (``provider_fallback``)."""
        ...


def _rms(pcm: np.ndarray) -> float:
    if not len(pcm):
        return 0.0
    x = pcm.astype(np.float32)
    return float(np.sqrt(np.dot(x, x) / len(x)))


class Conversation:
    def __init__(self, agent: AgentConfig | dict[str, Any], user_data: dict[str, Any], io: CallIO, *,
                 stt: SpeechToText,
                 tts: TextToSpeech, engine: ResponseEngine, voice: str, agent_name: str,
                 phrases: list[str] | None = None, clock: Callable[[], float] = time.monotonic,
                 fallback_stt: SpeechToText | None = None,
                 fallback_tts: tuple[TextToSpeech, str] | None = None,
                 phrase_cache: PhraseCache | None = None, cache_scope: Hashable = None) -> None:
        """``fallback_stt`` / ``fallback_tts`` (a provider and its voice): the local providers a failing
        cloud one is replaced by for the rest of the call, so a provider outage is never a silent line.
        ``phrase_cache``: where fixed phrases (greeting, apologies, configured prompts) are synthesised once
        for every call that says them; ``cache_scope`` (the organization) says who may hear a cached one."""
        self.agent, self.user_data, self.io = AgentConfig.load(agent), user_data, io
        self.stt, self.tts, self.engine = stt, tts, engine
        self._fallback_stt, self._fallback_tts = fallback_stt, fallback_tts
        self._stt_failures = 0
        self.voice, self.agent_name, self.clock = voice, agent_name, clock
        self.speed = self.agent.voice_settings.speed if self.agent.voice_settings else None
        self.speech_rate = vad_rate(io.sample_rate)
        self.dtmf = DtmfMatcher(self.agent.dtmf_rules)
        self.metrics: list[TurnMetrics] = []
        self.interruptions = 0
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(maxsize=256)
        self._preroll: deque[np.ndarray] = deque()
        self._preroll_samples = 0
        self._caller: CallerTurn | None = None  # the caller turn being spoken
        self._turn: AgentTurn | None = None  # the agent turn being spoken (until its playout ends)
        self._reply: asyncio.Task[None] | None = None
        self._hangup_after_playout: str | None = None
        self._phrases = phrases
        self._phrase_cache, self._cache_scope = phrase_cache, cache_scope
        self._speech: Any = None
        self._last_activity = clock()
        self._closed = False
        # flushes sent to STT, in order: (clock, the flush's event, SttLoad ticket, caller turn)
        self._pending_stops: deque[tuple[float, TurnEvent, float | None, CallerTurn]] = deque()
        self._spec: Speculation | None = None
        self.speculations = 0  # speculative replies started
        self.speculations_wasted = 0  # discarded because the caller went on
        self.speculations_used = 0  # confirmed and spoken
        self.stt_shed = 0  # caller turns the overloaded local recogniser did not take
        self._task: asyncio.Task[None] | None = None
        self._stt_reader: asyncio.Task[None] | None = None
        self._push_reader: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._speech = self.stt.stream(phrases=self._phrases)
        self._stt_reader = loop.create_task(self._read_transcripts(), name="conversation-stt")
        self._task = loop.create_task(self._main(), name="conversation")
        pushes = getattr(self.engine, "pushes", None)
        if pushes is not None:  # engines that speak unprompted (custom LLM agent_interrupt)
            self._push_reader = loop.create_task(self._read_pushes(pushes()), name="conversation-pushes")

    async def aclose(self) -> dict[str, Any]:
        """Stop everything; the unfinished agent turn is saved; returns the call's conversation metrics."""
        self._closed = True
        for task in (self._reply, self._task, self._stt_reader, self._push_reader):
            await _stop(task)
        if self._turn is not None:
            await self._finish_turn(interrupted=self.io.played_samples() < self._turn.end_sample)
        if self._speech is not None:
            await self._speech.aclose()
        await self.engine.aclose()
        return summarize(self.metrics, self.interruptions)

    # -- inputs from the media tick (sync, never block) ----------------------------------------------
    def on_speech(self, pcm: np.ndarray) -> None:
        """Caller audio as the VAD analysed it (at ``speech_rate``), every tick."""
        ct = self._caller
        if ct is not None:
            ct.audio.append(pcm)
            ct.audio_samples += len(pcm)
            if self._streaming():
                fell = ct.voice_fell(pcm, max(1, int(VOICE_TAIL_SECONDS * self.speech_rate)))
                if fell or ct.audio_samples >= STREAM_PUSH_SECONDS * self.speech_rate:
                    # a block is full, or the voice just fell: the recogniser's own endpointing (and the final
                    # a pause asks for) counts from the last voiced audio it has, so it gets that at once
                    self._push(ct)
        else:
            self._preroll.append(pcm)
            self._preroll_samples += len(pcm)
            while self._preroll_samples - len(self._preroll[0]) > PREROLL_SECONDS * self.speech_rate:
                self._preroll_samples -= len(self._preroll.popleft())
        turn = self._turn
        if turn is not None and turn.generated and self.io.played_samples() >= turn.end_sample:
            self._post("playout_done", turn)

    def on_turn_event(self, event: TurnEvent) -> None:
        if event.kind is TurnEventKind.USER_SILENT:
            ct = self._caller
            if ct is not None and self._streaming():  # the voice fell: what it said goes to STT now, whole
                self._push(ct, final=True)  # (not at the next block, nor held in the resampler's filter)
            return
        self._post("turn", event)

    def on_dtmf(self, digit: str) -> None:
        self._post("dtmf", digit)

    def _post(self, kind: str, value: Any) -> None:
        try:
            self._queue.put_nowait((kind, value))
        except asyncio.QueueFull:
            log.warning("conversation queue full: dropped %s", kind)

    # -- the conversation's task -----------------------------------------------------------------------
    async def _main(self) -> None:
        greeting = self.agent.begin_message
        if greeting and self.agent.first_speaker == "agent":
            text = render(greeting, self.user_data)
            add = getattr(self.engine, "add_assistant", None)
            if add is not None:
                add(text)
            self._start_reply(self._say(text))
        while not self._closed:
            timeout = self._next_deadline()
            try:
                kind, value = await asyncio.wait_for(self._queue.get(), timeout)
            except TimeoutError:
                await self._on_timer()
                continue
            if kind == "turn":
                await self._on_turn(value)
            elif kind == "transcript":
                await self._on_transcript(*value)
            elif kind == "playout_done":
                if value is self._turn:
                    await self._finish_turn(interrupted=False)
            elif kind == "dtmf":
                self._last_activity = self.clock()
                await self._on_action(self.dtmf.push(value, self.clock()))
            elif kind == "push":
                await self._on_push(value)
            elif kind == "stt_failed":
                await self._on_stt_failed(*value)
            elif kind == "fallback":
                await self.io.record_event("provider_fallback", value)

    def _next_deadline(self) -> float | None:
        now = self.clock()
        deadlines = []
        if self.dtmf.deadline is not None:
            deadlines.append(self.dtmf.deadline - now)
        inactivity = self.agent.inactivity_timeout_seconds
        if inactivity and self._idle():
            deadlines.append(self._last_activity + inactivity - now)
        return max(0.0, min(deadlines)) if deadlines else None

    def _idle(self) -> bool:
        return self._caller is None and self._turn is None and (self._reply is None or self._reply.done())

    async def _on_timer(self) -> None:
        now = self.clock()
        await self._on_action(self.dtmf.poll(now))
        inactivity = self.agent.inactivity_timeout_seconds
        if inactivity and self._idle() and now - self._last_activity >= inactivity:
            self._last_activity = now
            if self.agent.inactivity_action == "reminder":
                self._start_reply(self._run_engine(self.engine.remind(), started=now, speech_end=None))
            else:
                await self.io.hangup("inactivity")

    async def _on_turn(self, event: TurnEvent) -> None:
        kind = event.kind
        if kind is TurnEventKind.USER_STARTED_SPEAKING:
            self._last_activity = self.clock()
            old = self._caller
            if old is not None and old.confirmed is None:  # an unfinished turn (agent took the floor): dropped
                self._discard_speculation(old)
            started = CallerTurn(event, list(self._preroll), self._preroll_samples)
            if self.speech_rate != self.stt.sample_rate:
                started.resampler = StreamResampler(self.speech_rate, self.stt.sample_rate)
            self._caller = started
            self._preroll.clear()
            self._preroll_samples = 0
            if self._streaming():
                self._push(started)
        elif kind is TurnEventKind.INTERRUPT:
            self.interruptions += 1
            await self._interrupt()
        elif kind is TurnEventKind.USER_PAUSED:
            ct = self._caller
            if ct is not None and self._streaming():
                ct.paused = event
                self._flush(ct, event)  # finalise now: the reply can be ready when the end is confirmed
                await self._advance(ct)
        elif kind is TurnEventKind.USER_RESUMED:
            ct = self._caller
            if ct is not None:
                ct.paused = None
                self._discard_speculation(ct)
        elif kind is TurnEventKind.USER_STOPPED_SPEAKING:
            self._last_activity = self.clock()
            ct, self._caller = self._caller, None
            if ct is None:
                return
            ct.confirmed = event
            self._flush(ct, event)
            await self._advance(ct)

    def _streaming(self) -> bool:
        """Speculation needs a recogniser that takes audio as it comes (cloud streaming STT) and an engine
        whose reply can be taken back (its history rolled back)."""
        return bool(getattr(self.stt, "streaming", False)) and self._speech is not None

    def _push(self, ct: CallerTurn, *, final: bool = False) -> None:
        """Hand the turn's buffered audio to STT (resampled with the turn's own stateful resampler, soxr; at
        a flush (``final``) the samples still inside its filter go too)."""
        if self._speech is None or ct.shed or not (ct.audio or (final and ct.resampler is not None)):
            return
        audio = np.concatenate(ct.audio) if ct.audio else np.zeros(0, np.int16)
        ct.audio.clear()
        ct.audio_samples = 0
        if ct.resampler is not None:
            audio = ct.resampler.process(audio)
            if final:
                audio = np.concatenate([audio, ct.resampler.flush()])
        if len(audio):
            self._speech.push_audio(audio)
            ct.unflushed = True

    def _flush(self, ct: CallerTurn, event: TurnEvent) -> None:
        """End the part of the turn STT has: its final will follow. The shared local recogniser's load
        decides first: over its bound the turn is shed (never transcribed), when degraded it is decoded
        with the phrase grammar only."""
        if self._speech is None or ct.shed:
            return
        ticket = None
        if ct.flushes == 0 and not ct.unflushed:  # the whole turn goes at once (non-streaming recogniser)
            load = load_of(self.stt)
            if load is not None:
                ticket = load.begin()
                if ticket is None:
                    ct.shed = True
                    self.stt_shed += 1
                    log.info("speech-to-text overloaded: a caller turn was shed (%d pending)", load.pending)
                    return
                self._degrade(load)
        self._push(ct, final=True)
        if not ct.unflushed:
            return
        self._speech.flush()
        ct.unflushed = False
        ct.flushes += 1
        now = self.clock()
        ct.first_flush_at = ct.first_flush_at or now
        self._pending_stops.append((now, event, ticket, ct))

    def _degrade(self, load: SttLoad) -> None:
        set_strict = getattr(self._speech, "set_strict", None)
        if set_strict is not None:
            set_strict(load.degraded)

    async def _read_pushes(self, pushes: AsyncIterator[AsyncIterator[EngineEvent]]) -> None:
        async for events in pushes:
            self._post("push", events)

    async def _on_push(self, events: AsyncIterator[EngineEvent]) -> None:
        """The engine speaks unprompted: barge out the current reply, speak this as a new agent turn (its
        end_call ToolOutcome hangs up after it). Not a caller turn: kept out of the latency metrics."""
        await self._interrupt()
        self._last_activity = self.clock()
        self._start_reply(self._run_engine(events, started=self.clock(), speech_end=None, record=False))

    async def _read_transcripts(self) -> None:
        while True:
            try:
                async for result in self._speech:
                    if result.is_final:
                        entry = self._pending_stops.popleft() if self._pending_stops else None
                        self._post("transcript", (result, entry))
                    else:
                        self._partial("user", result.text)
                return
            except ProviderError as exc:
                # the utterances in flight are lost; listen again (on the local recogniser when there is one)
                self._stt_failures += 1
                for _, _, ticket, ct in self._pending_stops:
                    ct.finals += 1
                    load = load_of(self.stt)
                    if ticket is not None and load is not None:
                        load.end(ticket, completed=False)
                self._pending_stops.clear()
                failed, self._speech = self._speech, None
                with contextlib.suppress(Exception):
                    await failed.aclose()
                give_up = self._stt_failures >= MAX_STT_FAILURES
                if self._fallback_stt is not None and self.stt is not self._fallback_stt:
                    self.stt = self._fallback_stt
                    self._post("fallback", {"kind": "stt", "reason": exc.reason, "error": str(exc)})
                self._post("stt_failed", (exc, give_up))
                if give_up:
                    return
                self._speech = self.stt.stream(phrases=self._phrases)

    def _partial(self, role: str, text: str) -> None:
        """The turn being spoken, so far, for live listeners (the io's optional ``partial_turn``)."""
        hook = getattr(self.io, "partial_turn", None)
        if hook is not None and text.strip():
            hook(role, text.strip())

    async def _on_stt_failed(self, exc: ProviderError, gave_up: bool) -> None:
        log.warning("speech-to-text failed (%s)%s", exc, ": no longer listening" if gave_up else "")
        now = self.io.elapsed_ms()
        await self.io.save_turn({"role": "system", "start_ms": now, "end_ms": now,
                                 "content": f"speech-to-text provider error: {exc.reason}: {exc}"
                                            + ("; stopped listening" if gave_up else "")})
        if self._idle():
            self._start_reply(self._say(APOLOGY if gave_up else STT_APOLOGY))

    async def _on_transcript(self, result: Transcript, entry: tuple[float, TurnEvent, float | None, CallerTurn]
                             | None) -> None:
        if entry is None:  # a final nobody flushed for (the recogniser finalised on its own)
            ct = CallerTurn(None, confirmed=None)
            ct.flushes = 1
        else:
            flushed_at, _, ticket, ct = entry
            load = load_of(self.stt)
            if ticket is not None and load is not None:
                ct.stt_latency_ms = load.end(ticket)
            else:
                ct.stt_latency_ms = (self.clock() - flushed_at) * 1000.0
        ct.finals += 1
        ct.segments.append(result.text.strip())
        if entry is None:
            ct.confirmed = TurnEvent(TurnEventKind.USER_STOPPED_SPEAKING, self.clock(), self.clock(), self.clock())
        await self._advance(ct)

    async def _advance(self, ct: CallerTurn) -> None:
        """Act on what is known of a caller turn: nothing until STT has all of it; then, if the endpointer
        confirmed its end, the reply (the speculation's, if it was for the same words); if the caller is
        only pausing, a speculative reply, held."""
        if not ct.transcribed or ct.shed:
            return
        text = ct.text
        if ct.confirmed is None:
            if ct.paused is not None and text:
                self.io.end_hint(reads_finished(text))  # how long this pause must last to end the turn
            if ct.paused is None or not text or self._spec is not None and self._spec.turn is ct \
                    and self._spec.text == text:
                return
            if not self._can_speculate():
                return
            self._discard_speculation(ct)
            await self._start_speculation(ct, text)
            return
        spec = self._spec
        if spec is not None and spec.turn is ct and spec.text == text and not spec.discarded:
            await self._save_user_turn(ct, text)
            self._release(spec)
            return
        self._discard_speculation(ct)
        if not text:
            return
        await self._save_user_turn(ct, text)
        if self._reply is not None and not self._reply.done():
            await self._interrupt()  # a new question supersedes a reply still being prepared
        event = ct.confirmed
        metrics = TurnMetrics(stt_latency_ms=ct.stt_latency_ms)
        self._start_reply(self._run_engine(self.engine.respond(text), started=ct.first_flush_at or self.clock(),
                                           speech_end=event.speech_end if event.speech_end is not None
                                           else event.at, metrics=metrics))

    async def _save_user_turn(self, ct: CallerTurn, text: str) -> None:
        event = ct.confirmed
        if event is not None and event.speech_end is not None and ct.started is not None:
            start_ms, end_ms = self.io.call_ms(event.speech_start), self.io.call_ms(event.speech_end)
        else:
            start_ms = end_ms = self.io.elapsed_ms()
        await self.io.save_turn({"role": "user", "content": text, "start_ms": max(0, start_ms),
                                 "end_ms": max(0, end_ms)})

    # -- speculation -----------------------------------------------------------------------------------
    def _can_speculate(self) -> bool:
        return isinstance(getattr(self.engine, "messages", None), list) or type(self.engine).__name__ == \
            "RetrievalEngine"

    async def _start_speculation(self, ct: CallerTurn, text: str) -> None:
        if self._reply is not None and not self._reply.done():
            return  # the agent is still preparing or speaking something: no speculation over it
        messages = getattr(self.engine, "messages", None)
        spec = Speculation(ct, text, history=len(messages) if isinstance(messages, list) else None,
                           metrics=TurnMetrics(stt_latency_ms=ct.stt_latency_ms))
        self._spec = spec
        self.speculations += 1
        pause = ct.paused
        assert pause is not None
        tools = getattr(self.engine, "tools", None)
        if tools is not None:
            self.engine.tools = _ConfirmedTools(tools, spec.confirmed)  # type: ignore[attr-defined]
        self._start_reply(self._run_engine(self.engine.respond(text), started=self.clock(),
                                           speech_end=pause.speech_end, metrics=spec.metrics, spec=spec))

    def _discard_speculation(self, ct: CallerTurn | None = None) -> None:
        """The caller went on (or the turn ended with other words): the prepared reply is thrown away,
        unheard, and the engine forgets it."""
        spec = self._spec
        if spec is None or (ct is not None and spec.turn is not ct) or spec.released:
            return
        self._spec = None
        spec.discarded = True
        self.speculations_wasted += 1
        if self._reply is not None and not self._reply.done():
            self._reply.cancel()
        self._restore_tools()
        messages = getattr(self.engine, "messages", None)
        if spec.history is not None and isinstance(messages, list):
            del messages[spec.history:]
        if spec.agent_turn is not None and self._turn is spec.agent_turn:
            self._turn = None
        spec.held.clear()

    def _restore_tools(self) -> None:
        tools = getattr(self.engine, "tools", None)
        if isinstance(tools, _ConfirmedTools):
            self.engine.tools = tools._tools  # type: ignore[attr-defined]

    def _release(self, spec: Speculation) -> None:
        """The endpointer confirmed: speak the prepared reply now (what is held, then the rest as it comes)."""
        spec.released = True
        spec.confirmed.set()
        self.speculations_used += 1
        self._spec = None
        self._restore_tools()
        now = self.clock()
        if spec.agent_turn is not None:
            spec.agent_turn.start_ms = self.io.elapsed_ms()
        running = self._reply is not None and not self._reply.done()
        if running:
            self.io.set_responding(True)
        if spec.metrics is not None and spec.metrics.first_audio_at is not None:
            spec.metrics.first_audio_at = now
            end = spec.turn.confirmed.speech_end if spec.turn.confirmed is not None else None
            if end is not None:
                spec.metrics.voice_to_voice_ms = (now - end) * 1000.0
        held, spec.held = spec.held, []
        for pcm in held:
            self.io.play(pcm)
        if not running:
            self.io.set_responding(False)
            turn = self._turn
            if turn is not None and turn.generated and self.io.played_samples() >= turn.end_sample:
                self._post("playout_done", turn)

    # -- replies ---------------------------------------------------------------------------------------
    def _start_reply(self, coro: Any) -> None:
        self._reply = asyncio.get_running_loop().create_task(coro, name="conversation-reply")

    async def _say(self, text: str) -> None:
        turn = self._open_turn()
        try:
            await self._speak(text, turn, fixed=True)
        finally:
            turn.generated = True
            self.io.set_responding(False)

    def _open_turn(self, spec: Speculation | None = None) -> AgentTurn:
        played = self.io.played_samples()
        turn = AgentTurn(start_sample=played, end_sample=played, start_ms=self.io.elapsed_ms(),
                         rate=self.io.sample_rate)
        self._turn = turn
        if spec is None:
            self.io.set_responding(True)  # a held speculation is not the agent speaking (yet)
        else:
            spec.agent_turn = turn
        return turn

    async def _speak(self, sentence: str, turn: AgentTurn, metrics: TurnMetrics | None = None,
                     spec: Speculation | None = None, *, fixed: bool = False) -> None:
        """Synthesise and play one sentence; ``fixed``: a phrase the agent's configuration fixes (greeting,
        apology, prompt), synthesised once and reused from the phrase cache."""
        t0 = time.perf_counter()
        samples = 0
        try:
            if fixed and self._phrase_cache is not None:
                stream = self._phrase_cache.synthesize(self.tts, sentence, self.voice, self.io.sample_rate,
                                                       speed=self.speed, scope=self._cache_scope)
            else:
                stream = self.tts.synthesize(sentence, self.voice, self.io.sample_rate, speed=self.speed)
            async with stream as audio:
                async for chunk in audio:
                    if samples == 0:
                        self._partial("agent", f"{turn.text} {sentence}")
                    if samples == 0 and metrics is not None and metrics.tts_latency_ms is None:
                        metrics.tts_latency_ms = (time.perf_counter() - t0) * 1000.0
                        metrics.first_audio_at = self.clock()
                    if spec is not None and not spec.released:
                        spec.held.append(chunk)  # speculative: spoken once the endpointer confirms
                    else:
                        self.io.play(chunk)
                    samples += len(chunk)
        except asyncio.CancelledError:
            if samples:  # cut short (barge-in, hang-up) while streaming: what was queued may have been heard
                turn.add(sentence, samples)
            raise
        except ProviderError as exc:
            if self._fallback_tts is None or self.tts is self._fallback_tts[0]:
                raise
            # the rest of the call speaks with the local voice; this sentence too, unless it was mostly heard
            log.warning("text-to-speech failed (%s): the local voice takes over", exc)
            self.tts, self.voice = self._fallback_tts
            await self.io.record_event("provider_fallback", {"kind": "tts", "reason": exc.reason, "error": str(exc)})
            now = self.io.elapsed_ms()
            await self.io.save_turn({"role": "system", "start_ms": now, "end_ms": now,
                                     "content": f"text-to-speech provider error: {exc.reason}: {exc}; "
                                                "switched to the local voice"})
            if samples == 0:
                await self._speak(sentence, turn, metrics, spec, fixed=fixed)
                return
        turn.add(sentence, samples)

    async def _run_engine(self, events: AsyncIterator[EngineEvent], *, started: float, speech_end: float | None,
                          metrics: TurnMetrics | None = None, record: bool = True,
                          spec: Speculation | None = None) -> None:
        metrics = metrics or TurnMetrics()
        turn = self._open_turn(spec)
        splitter = SentenceSplitter()
        t_request = time.perf_counter()
        try:
            async for ev in events:
                if isinstance(ev, TextDelta):
                    if metrics.llm_latency_ms is None:
                        metrics.llm_latency_ms = (time.perf_counter() - t_request) * 1000.0
                    for sentence in splitter.push(ev.text):
                        await self._speak(sentence, turn, metrics, spec)
                elif isinstance(ev, ToolOutcome):
                    await self._on_tool(ev)
                elif isinstance(ev, Usage):
                    metrics.tokens += ev.total_tokens
            for sentence in splitter.flush():
                await self._speak(sentence, turn, metrics, spec)
        except ProviderError as exc:
            log.warning("response engine failed (%s): apologising", exc)
            await self.io.save_turn({"role": "system", "content": f"provider error: {exc.reason}: {exc}",
                                     "start_ms": self.io.elapsed_ms(), "end_ms": self.io.elapsed_ms()})
            await self._speak(APOLOGY, turn, metrics, spec, fixed=True)
        finally:
            turn.generated = True
            self.io.set_responding(False)
            if metrics.first_audio_at is not None and speech_end is not None:
                metrics.voice_to_voice_ms = (metrics.first_audio_at - speech_end) * 1000.0
            if self.engine.stats.ttft_ms is not None:
                metrics.llm_latency_ms = self.engine.stats.ttft_ms
            metrics.retrieval_ms = getattr(self.engine, "retrieval_ms", None)
            if record and not (spec is not None and spec.discarded):
                self.metrics.append(metrics)
        if not turn.text:
            self._turn = None
            if self._hangup_after_playout:
                await self.io.hangup(self._hangup_after_playout)
        elif self.io.played_samples() >= turn.end_sample:
            await self._finish_turn(interrupted=False)

    async def _on_tool(self, outcome: ToolOutcome) -> None:
        call = outcome.call
        await self.io.save_turn({"role": "tool", "content": outcome.content, "start_ms": self.io.elapsed_ms(),
                                 "end_ms": self.io.elapsed_ms(),
                                 "tool_call": {"name": call.name, "arguments": outcome.args or call.args()}})
        if outcome.error:
            return
        if outcome.action == "end_call":
            self._hangup_after_playout = "agent_hangup"
        elif outcome.action == "transfer_call" and outcome.args.get("target"):
            await self.io.transfer(str(outcome.args["target"]))
        elif outcome.action == "send_dtmf" and outcome.args.get("digits"):
            await self.io.send_dtmf(str(outcome.args["digits"]))

    async def _on_action(self, action: DtmfAction | None) -> None:
        if action is None:
            return
        if action.action == "hangup":
            await self.io.hangup("agent_hangup")
        elif action.action == "transfer" and action.target:
            await self.io.transfer(action.target)
        elif action.action == "say" and action.text:
            await self._interrupt()
            self._start_reply(self._say(render(action.text, self.user_data)))

    async def _interrupt(self) -> None:
        """Barge-in: stop the reply, drop queued audio, keep in the transcript only what was heard."""
        self._discard_speculation()
        if self._reply is not None and not self._reply.done():
            self._reply.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reply
        self.io.flush()
        self.io.set_responding(False)
        if self._turn is not None:
            await self._finish_turn(interrupted=True)

    async def _finish_turn(self, *, interrupted: bool) -> None:
        turn, self._turn = self._turn, None
        if turn is None:
            return
        played = self.io.played_samples() - turn.start_sample
        text = turn.heard(played) if interrupted else turn.text
        if interrupted:
            self.engine.interrupted(text)
        end_ms = turn.start_ms + int(1000 * min(played, turn.samples) / turn.rate)
        if text:
            await self.io.save_turn({"role": "agent", "content": text, "start_ms": turn.start_ms, "end_ms": end_ms,
                                     "agent_name": self.agent_name, "interrupted": interrupted})
        self._last_activity = self.clock()
        if self._hangup_after_playout and not interrupted:
            reason, self._hangup_after_playout = self._hangup_after_playout, None
            await self.io.hangup(reason)


async def _stop(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` and wait for it to finish. asyncio.wait_for (3.11) returns normally when the
    cancellation races the awaited result, swallowing it; so cancel again until the task is done."""
    for _ in range(20):
        if task is None or task.done():
            break
        task.cancel()
        await asyncio.wait({task}, timeout=0.5)
    if task is not None and task.done() and not task.cancelled():
        with contextlib.suppress(BaseException):
            task.exception()  # retrieved: no "never retrieved" warning
