"""Turn-taking: an endpointing state machine and barge-in, pure and clock-driven.

`Endpointer` turns per-window VAD probabilities into user_started_speaking / user_stopped_speaking with
the pipecat-style states quiet → starting → speaking → stopping and explicit start/stop durations.
With `speculate_ms` set, a silence inside a turn first emits USER_PAUSED (start finalising the
transcript and preparing the reply, but do not speak); USER_STOPPED_SPEAKING at `stop_ms` confirms the
end of the turn (speak now), and speech resuming in between emits USER_RESUMED (discard the speculation).
Silence inside a turn is timed from the audio's energy, not only from the VAD: Silero's probability stays
high for 100–200 ms after a voice stops (measured in bench-v2v), so a turn's end counted from it comes that
much late. Given each window's RMS level, a window during a turn counts as speech only if the VAD says so
AND its level is within `voice_drop_db` of the turn's speech level (and above `voice_floor`); the
silence — and so USER_PAUSED and USER_STOPPED_SPEAKING — then starts where the voice really fell. A window
in a silence loud enough to be the caller going on, that the VAD does not call speech, does not end the turn
until such windows have lasted `onset_hold_ms`: the VAD hears a soft onset ("f…") 100–130 ms late. Given
also the levels of a window's equal parts (`parts`: 8 ms each of a 32 ms window), it starts at the end of
the last part of the last voiced window that was voice, not at the window's end: a voice that stops early
in a window no longer adds the rest of that window (16 ms on average) to every pause and turn end. On a
line whose noise is louder than that (the level never falls), the VAD alone decides, as before.
USER_SILENT marks the first window of each silence inside a turn (a cue to send what the caller said so
far on).
What the caller said can set how long the current silence must last (`hint`): a transcript that reads as
finished ends the turn after `complete_stop_ms`, one that stops on a word a sentence cannot end with ("…
my number is", "and", "the") only after `open_stop_ms`; no hint, `stop_ms`. The hint holds until speech
resumes or the turn ends.
`TurnTaker` adds the agent side: while the agent talks, user speech only counts once it has lasted
`min_interrupt_ms` (then it is a barge-in, if the agent is interruptible); shorter speech is a
backchannel and is swallowed; a non-interruptible agent ignores speech while it talks. Times are seconds
on a clock the caller passes in, so a 30 s conversation can be tested in milliseconds.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass


class TurnState(enum.Enum):
    QUIET = "quiet"
    STARTING = "starting"
    SPEAKING = "speaking"
    STOPPING = "stopping"


class TurnEventKind(enum.Enum):
    USER_STARTED_SPEAKING = "user_started_speaking"
    USER_STOPPED_SPEAKING = "user_stopped_speaking"
    INTERRUPT = "interrupt"  # barge-in: flush the playout, cancel the response and synthesis
    USER_PAUSED = "user_paused"  # a short silence (speculate_ms): finalise and prepare a reply, do not speak
    USER_RESUMED = "user_resumed"  # speech again after USER_PAUSED, before stop_ms: discard the speculation
    BACKCHANNEL = "backchannel"  # short user speech over the agent, ignored
    USER_SILENT = "user_silent"  # a silence began inside a turn (it may end it, or be a pause)


@dataclass(frozen=True, slots=True)
class TurnEvent:
    kind: TurnEventKind
    at: float  # clock time the decision was made
    speech_start: float  # when the user's speech began (start of the first speech window)
    speech_end: float | None = None  # when it ended (start of the silence), for stop events


@dataclass(frozen=True, slots=True)
class EndpointingConfig:
    start_threshold: float = 0.5  # probability at which a window counts as speech
    stop_threshold: float = 0.35  # below this a window counts as silence (hysteresis in between)
    start_ms: float = 200.0  # speech must last this long to start a turn
    stop_ms: float = 600.0  # silence must last this long to end it (the endpointer's confirmation)
    complete_stop_ms: float = 550.0  # ... when the transcript so far reads as a finished sentence (`hint`)
    open_stop_ms: float = 1000.0  # ... when it stops on a word a sentence cannot end with
    speculate_ms: float = 0.0  # > 0: a silence this long emits USER_PAUSED (speculative start); 0 = off
    interruptible: bool = True
    min_interrupt_ms: float = 500.0  # user speech over the agent this long is a barge-in
    backchannel_gap_ms: float = 200.0  # over the agent, dips shorter than this do not split speech
    voice_drop_db: float = 25.0  # inside a turn, a window this far under the turn's speech level is silence
    voice_resume_db: float = 35.0  # in a silence, speech (by the VAD) within this of the level resumes the turn
    voice_floor: float = 60.0  # int16 RMS under which a window is never voice (≈ −55 dBFS)
    onset_hold_ms: float = 150.0  # a window loud enough to be the caller going on (a fricative), that the VAD does
    # not call speech (yet: it takes it 100–130 ms into "for …"), holds the turn's end for as long as such windows
    # have lasted under this; a noisy line's level is that loud from the silence's start, so its ends are not held


class Endpointer:
    """quiet → starting → speaking → stopping → quiet. `update(prob, now, duration)` where `now` is the
    end of the analysed audio and `duration` its length (32 ms per Silero window)."""

    def __init__(self, config: EndpointingConfig | None = None) -> None:
        self.config = config or EndpointingConfig()
        self.state = TurnState.QUIET
        self.speech_start = 0.0  # start of the current speech run
        self.silence_start = 0.0  # start of the current silence in STOPPING
        self.paused = False  # USER_PAUSED was emitted for the current silence
        self.stop_s = self.config.stop_ms / 1000.0  # the current silence's confirmation (see `hint`)
        self.level = 0.0  # the current turn's speech level (RMS), followed from its speech windows
        # end of the last voiced part of the last voiced window (`parts`); used only if that window is the one just
        # before the silence (checked there), so a stale value from an earlier turn is never taken
        self.voice_end: float | None = None
        self._loud_since: float | None = None  # in a silence: start of the current run of windows above quiet_level
        # (reset as each silence begins)
        self._drop = 10.0 ** (-self.config.voice_drop_db / 20.0)
        self._resume = 10.0 ** (-self.config.voice_resume_db / 20.0)

    def reset(self) -> None:
        self.state = TurnState.QUIET
        self.paused = False
        self.stop_s = self.config.stop_ms / 1000.0

    def hint(self, complete: bool | None) -> None:
        """What the caller said so far in this turn reads as finished (True), as unfinished (False), or
        cannot tell (None): the current silence then ends the turn after complete_stop_ms, open_stop_ms or
        stop_ms. Only inside a silence of a turn (a late hint is ignored); speech resuming, or the turn's
        end, clears it."""
        if self.state is not TurnState.STOPPING:
            return
        cfg = self.config
        ms = cfg.stop_ms if complete is None else cfg.complete_stop_ms if complete else cfg.open_stop_ms
        self.stop_s = ms / 1000.0

    def _voiced(self, rms: float) -> bool:
        """Voice, by its level: inside speech, within voice_drop_db of the turn's level; inside a silence
        (hysteresis: a soft onset after a pause is not more silence), within voice_resume_db."""
        drop = self._resume if self.state is TurnState.STOPPING else self._drop
        return rms >= self.config.voice_floor and rms >= self.level * drop

    def _follow(self, rms: float) -> None:
        """The turn's speech level: up at once to a louder window, down slowly (under 1 dB per 0.4 s of softer
        speech) with windows within voice_drop_db of it (a soft onset that resumes a turn does not lower it)."""
        if rms > self.level:
            self.level = rms
        elif rms >= self.level * self._drop:
            self.level = self.level * 0.99 + rms * 0.01

    def _is_speech(self, prob: float) -> bool:
        cfg = self.config
        if self.state in (TurnState.SPEAKING, TurnState.STOPPING):
            return prob >= cfg.stop_threshold  # hysteresis: keep speaking until clearly quiet
        return prob >= cfg.start_threshold

    def update(self, prob: float, now: float, duration: float = 0.032, rms: float | None = None,
               parts: Sequence[float] | None = None) -> TurnEvent | None:
        """One VAD window: its speech probability, the end of the window on the audio clock, its length,
        and (optionally) its RMS level, which times silences inside a turn from where the voice fell, and the
        levels of its equal parts, which place that point inside the window."""
        cfg = self.config
        speech = self._is_speech(prob)
        began = now - duration
        st = self.state
        if rms is not None and speech:
            if st is TurnState.QUIET:
                self.level = rms
            elif self._voiced(rms):
                self._follow(rms)
                if parts:
                    self.voice_end = self._last_voice(began, duration, parts)
            elif st is not TurnState.STARTING:
                speech = False  # the VAD still says speech, but the voice has fallen: a silence
        if st is TurnState.QUIET:
            if speech:
                self.state, self.speech_start = TurnState.STARTING, began
        elif st is TurnState.STARTING:
            if not speech:
                self.state = TurnState.QUIET
        elif st is TurnState.SPEAKING:
            if not speech:
                end = self.voice_end
                start = end if end is not None and began - duration - 1e-9 <= end <= began else began
                self.state, self.silence_start, self._loud_since = TurnState.STOPPING, start, None
                return TurnEvent(TurnEventKind.USER_SILENT, now, self.speech_start, start)
        elif speech:  # STOPPING
            self.state = TurnState.SPEAKING
            self.stop_s = cfg.stop_ms / 1000.0
            if self.paused:
                self.paused = False
                return TurnEvent(TurnEventKind.USER_RESUMED, now, self.speech_start, self.silence_start)
        if self.state is TurnState.STARTING and now - self.speech_start >= cfg.start_ms / 1000.0 - 1e-9:
            self.state = TurnState.SPEAKING
            return TurnEvent(TurnEventKind.USER_STARTED_SPEAKING, now, self.speech_start)
        if self.state is TurnState.STOPPING:
            hold = False
            if rms is not None and rms >= self.quiet_level():  # could be the caller going on: the VAD decides
                if self._loud_since is None:
                    self._loud_since = began
                hold = now - self._loud_since < cfg.onset_hold_ms / 1000.0 - 1e-9
            else:
                self._loud_since = None
            return self._silence_check(now, hold_stop=hold)
        return None

    def _last_voice(self, began: float, duration: float, parts: Sequence[float]) -> float:
        """The end of a voiced window's last part that is voice (by the same level as `_voiced`; a voiced
        window has one: its loudest part is at least as loud as the whole)."""
        floor = max(self.config.voice_floor, self.level * self._drop)
        for k in range(len(parts) - 1, -1, -1):
            if parts[k] >= floor:
                return began + duration * (k + 1) / len(parts)
        return began + duration

    def quiet_level(self) -> float:
        """The RMS level under which audio cannot resume the current silence of a turn (see `_voiced`)."""
        return max(self.config.voice_floor, self.level * self._resume)

    def quiet_through(self, now: float) -> TurnEvent | None:
        """The caller's audio up to `now` (audio clock, ahead of the VAD's windows) is known to lie under
        `quiet_level()`: whatever the VAD makes of it, it cannot resume the turn, so the current silence has
        lasted until `now`. Ends (or pauses) the turn at `now` without waiting for the VAD's results. Only
        inside a silence of a turn; the VAD's windows for that audio, when they come, find the turn ended."""
        if self.state is not TurnState.STOPPING:
            return None
        return self._silence_check(now)

    def _silence_check(self, now: float, hold_stop: bool = False) -> TurnEvent | None:
        cfg = self.config
        if now - self.silence_start >= self.stop_s - 1e-9 and not hold_stop:
            self.state = TurnState.QUIET
            self.paused = False
            self.stop_s = cfg.stop_ms / 1000.0
            return TurnEvent(TurnEventKind.USER_STOPPED_SPEAKING, now, self.speech_start, self.silence_start)
        if (not self.paused and 0 < cfg.speculate_ms / 1000.0 < self.stop_s
                and now - self.silence_start >= cfg.speculate_ms / 1000.0 - 1e-9):
            self.paused = True
            return TurnEvent(TurnEventKind.USER_PAUSED, now, self.speech_start, self.silence_start)
        return None

    @property
    def user_speaking(self) -> bool:
        """A turn is open (speaking, or a pause shorter than stop_ms)."""
        return self.state in (TurnState.SPEAKING, TurnState.STOPPING)


class TurnTaker:
    """Endpointing plus barge-in for one call. Tell it when the agent starts and stops talking
    (`agent_started(now)`, `agent_stopped(now)`); feed it every VAD window with `update()`.

    While the agent talks the user's turn events are held back: speech lasting `min_interrupt_ms` emits
    INTERRUPT then USER_STARTED_SPEAKING (the agent is then considered silent: flush its playout);
    shorter speech emits BACKCHANNEL and nothing else. A non-interruptible agent ignores speech entirely
    while talking; a turn can only start once it has stopped.
    """

    def __init__(self, config: EndpointingConfig | None = None) -> None:
        self.config = config or EndpointingConfig()
        self.endpointer = Endpointer(self.config)
        self.agent_speaking = False
        self.interruptions = 0
        self.backchannels = 0
        self._over_start: float | None = None  # start of user speech heard over the agent
        self._over_last: float = 0.0  # end of the last speech window over the agent

    def agent_started(self, now: float) -> None:
        self.agent_speaking = True
        self._over_start = None
        if not self.config.interruptible:
            self.endpointer.reset()

    def agent_stopped(self, now: float) -> None:
        self.agent_speaking = False
        self._over_start = None

    def hint(self, complete: bool | None) -> None:
        """`Endpointer.hint` for the caller's turn."""
        self.endpointer.hint(complete)

    def update(self, prob: float, now: float, duration: float = 0.032, rms: float | None = None,
               parts: Sequence[float] | None = None) -> list[TurnEvent]:
        if not self.agent_speaking:
            ev = self.endpointer.update(prob, now, duration, rms, parts)
            return [ev] if ev else []
        if not self.config.interruptible:
            return []
        return self._over_agent(prob, now, duration)

    def quiet_through(self, now: float) -> TurnEvent | None:
        """`Endpointer.quiet_through` for the caller's turn (while the agent is silent)."""
        return None if self.agent_speaking else self.endpointer.quiet_through(now)

    def quiet_level(self) -> float | None:
        """`Endpointer.quiet_level` while a silence inside the caller's turn can end by it, else None."""
        ep = self.endpointer
        return None if self.agent_speaking or ep.state is not TurnState.STOPPING else ep.quiet_level()

    def _over_agent(self, prob: float, now: float, duration: float) -> list[TurnEvent]:
        cfg = self.config
        speech = prob >= (cfg.stop_threshold if self._over_start is not None else cfg.start_threshold)
        began = now - duration
        events: list[TurnEvent] = []
        if speech:
            if self._over_start is None:
                self._over_start = began
            self._over_last = now
            if now - self._over_start >= cfg.min_interrupt_ms / 1000.0 - 1e-9:
                start = self._over_start
                self.interruptions += 1
                self.agent_stopped(now)
                ep = self.endpointer
                ep.state, ep.speech_start, ep.paused = TurnState.SPEAKING, start, False
                ep.stop_s = cfg.stop_ms / 1000.0
                ep.level = 0.0  # the new turn's speech level is followed from its own windows
                events.append(TurnEvent(TurnEventKind.INTERRUPT, now, start))
                events.append(TurnEvent(TurnEventKind.USER_STARTED_SPEAKING, now, start))
        elif self._over_start is not None and now - self._over_last >= cfg.backchannel_gap_ms / 1000.0 - 1e-9:
            self.backchannels += 1
            events.append(TurnEvent(TurnEventKind.BACKCHANNEL, now, self._over_start, self._over_last))
            self._over_start = None
        return events

    @property
    def state(self) -> TurnState:
        return self.endpointer.state
