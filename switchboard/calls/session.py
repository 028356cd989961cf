"""One live call, either direction: its status written as it changes, its media on the shared tick,
its greeting spoken, its limits enforced, its end classified and recorded."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from agents.config import AgentConfig
from agents.conversation import Conversation
from agents.factory import KeyLookup, build_engine
from agents.knowledge import answerer_for
from agents.providers.base import SpeechToText, TextToSpeech
from agents.providers.phrase_cache import PhraseCache
from agents.providers.registry import close_when, fallback_voice, make_stt, make_tts
from agents.voices import DEFAULT_VOICE_ID, VoiceCatalog
from media.endpointing import EndpointingConfig
from media.recording import StereoRecorder
from media.tick import StreamEvent, vad_rate
from sipcore.calltypes import CallAnswered, CallEnd, CallEnded, CallRinging, DtmfReceived, HangupBy
from sipcore.causes import ACTIVE_STATUSES, CallStatus, DisconnectionReason, HangupCause
from store.types import DB
from switchboard.retention import may_record

from ..platform import logctx
from ..platform.live import publish_partial
from ..tasks import TaskSet
from . import events
from .leg import CallLeg
from .media_loop import LegIO

log = logging.getLogger(__name__)

_DIAL_REASONS = {CallStatus.BUSY: DisconnectionReason.DIAL_BUSY, CallStatus.NO_ANSWER: DisconnectionReason.DIAL_NO_ANSWER,
                 CallStatus.FAILED: DisconnectionReason.DIAL_FAILED}
_LOCAL_ENDS = {  # our own endings of an unanswered call, in words (the stack's close text, e.g.
    # "Rejected by user" for our CANCEL, does not say why)
    HangupCause.NO_ANSWER: "not answered within the answer timeout; canceled",
    HangupCause.RECOVERY_ON_TIMER_EXPIRE: "no response from the destination within the setup timeout "
                                          "(unreachable, or not a SIP peer)",
    HangupCause.ORIGINATOR_CANCEL: "canceled before it was answered",
    HangupCause.SYSTEM_SHUTDOWN: "the server stopped",
}
CLOSE_GRACE = 5.0  # seconds the conversation gets to save its last turn before the final status is written


@dataclass
class SessionDeps:
    db: DB
    media: Any  # MediaLoop
    tts: TextToSpeech
    stt: SpeechToText
    voices: VoiceCatalog
    recordings_dir: Path
    worker: str
    keys: Callable[[Any], KeyLookup]  # org id → provider-key lookup
    allow_private_tools: bool = False
    knowledge: Any = None  # the server's KnowledgeService (agents.knowledge.service), when it runs one
    phrases: PhraseCache = field(default_factory=PhraseCache)  # fixed phrases' audio, shared by the worker's calls


class SessionIO(LegIO):
    """The call as the conversation runtime sees it (agents.conversation.CallIO): the media half of its
    leg on the loop, plus the session's call control and transcript."""

    def __init__(self, session: CallSession) -> None:
        super().__init__(session.deps.media, session.id, session.call.sample_rate or 8000)
        self.s = session

    async def hangup(self, reason: str) -> None:
        self.s.request_hangup(reason)  # never awaits the engine inside the conversation's own task

    async def transfer(self, target: str) -> None:
        try:
            await self.s.transfer(target)
        except Exception as exc:  # the call goes on; the transcript says why
            await self.save_turn({"role": "system", "content": f"transfer to {target} failed: {exc}",
                                  "start_ms": self.elapsed_ms(), "end_ms": self.elapsed_ms()})

    async def send_dtmf(self, digits: str) -> None:
        await self.s.send_dtmf(digits)

    async def save_turn(self, turn: dict[str, Any]) -> None:
        await events.turn(self.s.deps.db, self.s.org_id, self.s.id, turn)

    async def record_event(self, kind: str, detail: dict[str, Any]) -> None:
        await events.event(self.s.deps.db, self.s.org_id, self.s.id, kind, detail)

    def partial_turn(self, role: str, text: str) -> None:
        """An interim transcript for live sockets (NOTIFY only: not call state, no outbox row)."""
        self.s._spawn(publish_partial(self.s.deps.db, self.s.org_id, self.s.id, role, text), "partial")


class CallSession:
    """Owns one call leg until it ends. ``run()`` is the session's one task; the final status is written
    once, in ``_ended``, whoever ended the call."""

    def __init__(self, deps: SessionDeps, row: dict[str, Any], call: CallLeg, *,
                 trunk: dict[str, Any] | None = None):
        self.deps = deps
        self.row = row
        self.id: UUID = row["id"]
        self.org_id: UUID | None = row.get("org_id")
        self.call = call
        self.trunk = trunk
        self.agent = AgentConfig.load(row.get("agent_config"))
        self.reason: DisconnectionReason | None = None  # why we ended it, when we did
        self.recorder: StereoRecorder | None = None
        self.answered_at: datetime | None = None
        self.ended = asyncio.Event()
        self.final: dict[str, Any] | None = None  # the call row as its final status was written
        self.dtmf: list[str] = []
        self.conversation: Conversation | None = None
        self._tasks = TaskSet()
        self._closing = False

    # -- control from the API / runtime ----------------------------------------------------------------
    def request_hangup(self, reason: str) -> None:
        """End the call for ``reason`` (the first reason given wins). Returns at once: the leg's hang-up
        runs on the session's own tasks, and its CallEnded event makes ``run`` write the final status."""
        if self.reason is None:
            self.reason = DisconnectionReason(reason)
        if not self.ended.is_set():
            self._spawn(self.call.hangup(), "hangup")

    async def hangup(self, reason: str) -> None:
        self.request_hangup(reason)

    async def send_dtmf(self, digits: str) -> None:
        await self.call.send_dtmf(digits)
        await events.event(self.deps.db, self.org_id, self.id, events.DTMF_SENT, {"digits": digits})

    async def transfer(self, target: str) -> None:
        """Blind transfer (REFER). Failure raises sipcore's TransferError and the call goes on."""
        await events.event(self.deps.db, self.org_id, self.id, events.TRANSFER, {"target": target})
        self.reason = DisconnectionReason.TRANSFERRED
        try:
            await self.call.transfer(target)
        except Exception as exc:
            self.reason = None
            await events.event(self.deps.db, self.org_id, self.id, events.TRANSFER_FAILED,
                               {"target": target, "error": str(exc)})
            raise

    # -- the session -----------------------------------------------------------------------------------
    async def run(self) -> None:
        logctx.CALL_ID.set(str(self.id))  # this task and every task it starts log "[call=<id>]"
        try:
            async for event in self.call.events():
                if isinstance(event, CallRinging):
                    await self._transition(CallStatus.RINGING, (CallStatus.PENDING,))
                elif isinstance(event, CallAnswered):
                    await self._answered()
                elif isinstance(event, DtmfReceived):
                    self.dtmf.append(event.digit)
                    if self.conversation is not None:
                        self.conversation.on_dtmf(event.digit)
                    await events.event(self.deps.db, self.org_id, self.id, events.DTMF_RECEIVED,
                                       {"digit": event.digit, "duration_ms": event.duration_ms})
                elif isinstance(event, CallEnded):
                    await self._ended(event.end)
        except Exception:
            log.exception("call %s: session failed", self.id)
            self.reason = self.reason or DisconnectionReason.ERROR
            if not self._closing:
                await self.call.hangup()
                end = self.call.end or await self.call.wait_ended()
                await self._ended(end)
        finally:
            self.ended.set()
            self._tasks.cancel()

    def _spawn(self, coro: Any, name: str) -> None:
        self._tasks.spawn(coro, f"call-{self.id}-{name}")

    async def _transition(self, status: str, allowed: tuple[str, ...], **fields: Any) -> dict[str, Any] | None:
        return await events.transition(self.deps.db, self.id, status, allowed_from=allowed, **fields)

    async def _answered(self) -> None:
        self.answered_at = datetime.now(UTC)
        fields: dict[str, Any] = {"answered_at": self.answered_at}
        if self.row.get("record", True) and await may_record(self.deps.db, self.row.get("org_id"), self.id):
            path = self.deps.recordings_dir / str(self.row.get("org_id") or "none") / f"{self.id}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            self.recorder = StereoRecorder(path, sample_rate=self.call.sample_rate or 8000)
            fields["recording_path"] = str(path)
        await self._transition(CallStatus.IN_PROGRESS, (CallStatus.PENDING, CallStatus.RINGING), **fields)
        self.conversation = await self._conversation()
        self.deps.media.add(self.id, self.call, recorder=self.recorder, on_events=self._on_turn_events,
                            on_media_timeout=self._on_media_timeout, on_speech=self.conversation.on_speech,
                            endpointing=self._endpointing())
        self.conversation.start()
        max_duration = self.row.get("max_duration_seconds") or self.agent.max_duration_seconds
        if max_duration:
            self._spawn(self._limit(float(max_duration)), "max-duration")

    async def _conversation(self) -> Conversation:
        agent = self.agent
        voice = self.deps.voices.get(agent.voice_id or DEFAULT_VOICE_ID) or \
            self.deps.voices.get(DEFAULT_VOICE_ID)
        user_data = self.row.get("user_data") or {}
        engine = await build_engine(agent.stored(), user_data, keys=self.deps.keys(self.row.get("org_id")),
                                    knowledge=answerer_for(self.deps.knowledge, self.row.get("org_id"),
                                                           agent.knowledge_base_ids),
                                    allow_private_tools=self.deps.allow_private_tools,
                                    call={"call_id": str(self.id), "agent_id": self.row.get("agent_id"),
                                          "from_number": self.row.get("from_number"),
                                          "to_number": self.row.get("to_number"),
                                          "direction": self.row.get("direction"),
                                          "metadata": self.row.get("metadata") or {}, "user_data": user_data})
        # Cloud speech providers are per call (the organization's keys); local ones are process-wide.
        keys = self.deps.keys(self.row.get("org_id"))
        stt = await make_stt(agent.stt.model_dump(), keys, local=self.deps.stt, language=agent.language,
                             speech_rate=vad_rate(self.call.sample_rate or 8000))
        tts = self.deps.tts
        if voice is not None:
            tts = await make_tts(voice, keys, local=self.deps.tts,
                                 voice_settings=agent.voice_settings.model_dump() if agent.voice_settings else None)
            if tts is self.deps.tts:
                voice = fallback_voice(voice, self.deps.voices)
        owned = [p for p in (stt, tts) if p is not self.deps.stt and p is not self.deps.tts]
        if owned:
            self._spawn(close_when(self.ended, owned), "close-providers")
        local_voice = fallback_voice(voice, self.deps.voices) if voice is not None else None
        return Conversation(agent, user_data, SessionIO(self), stt=stt, tts=tts,
                            engine=engine, voice=voice.engine_voice if voice else "en-us",
                            agent_name=self.row.get("agent_name") or "agent",
                            phrases=agent.stt.phrases or None,
                            fallback_stt=self.deps.stt,
                            fallback_tts=(self.deps.tts, local_voice.engine_voice if local_voice else "en-us"),
                            phrase_cache=self.deps.phrases, cache_scope=self.row.get("org_id"))

    def _endpointing(self) -> EndpointingConfig:
        # speculate at 100 ms of silence (a streaming recogniser is finalised and the reply prepared, held),
        # speak at the endpointer's confirmation: 550 ms of silence after words that read as a finished
        # sentence, 1000 ms after an unfinished one ("… my number is"), else 600 ms; silences timed from where
        # the voice fell. bench-v2v: 100 ms answered ~15 ms sooner than 150 ms, for 41 % of the speculations
        # wasted instead of 32-38 % (each a model request thrown away)
        return EndpointingConfig(interruptible=self.agent.interruptible, speculate_ms=100.0)

    async def _limit(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        log.info("call %s: max duration %.0f s reached", self.id, seconds)
        self.request_hangup(DisconnectionReason.MAX_DURATION_REACHED)

    def _on_media_timeout(self) -> None:
        log.warning("call %s: no media for the media timeout: hanging up", self.id)
        self.request_hangup(DisconnectionReason.MEDIA_TIMEOUT)

    def _on_turn_events(self, events: list[StreamEvent]) -> None:
        """Turn-taking events from the media tick, for the conversation."""
        if self.conversation is not None:
            for ev in events:
                self.conversation.on_turn_event(ev.event)

    async def _close_conversation(self) -> dict[str, Any]:
        """Stop the conversation (it saves the reply cut short with what was heard); bounded, so a stuck
        provider can never keep the call from being closed."""
        if self.conversation is None:
            return {}
        try:
            return await asyncio.wait_for(self.conversation.aclose(), CLOSE_GRACE)
        except TimeoutError:
            log.error("call %s: the conversation did not close in %.0f s", self.id, CLOSE_GRACE)
        except Exception:
            log.exception("call %s: closing the conversation failed", self.id)
        return {}

    async def _ended(self, end: CallEnd) -> None:
        """The one place a session writes its call's final status (once: later calls do nothing)."""
        if self._closing:
            return
        self._closing = True
        self.deps.media.remove(self.id)
        conversation_metrics = await self._close_conversation()
        recording: dict[str, Any] = {}
        if self.recorder is not None:
            try:
                await self.recorder.aclose()
                # measured once, here: the quota counts it (switchboard.retention) and nothing rewrites the row
                recording["recording_bytes"] = (await asyncio.to_thread(os.stat, self.recorder.path)).st_size
            except Exception:
                log.exception("call %s: finalising the recording failed", self.id)
        reason = self.reason or self._reason_from(end)
        if end.hangup_by is HangupBy.REMOTE and end.answered and reason is not DisconnectionReason.TRANSFERRED:
            # the caller's BYE ended the leg before our own hang-up took effect (an /end, a rule or a timer
            # racing it): the caller hung up first, and that is what the call records
            reason = DisconnectionReason.USER_HANGUP
        status = end.status
        cause = end.cause
        if reason is DisconnectionReason.TRANSFERRED and end.answered:
            status, cause = CallStatus.COMPLETED, HangupCause.NORMAL_CLEARING
        duration = end.duration_s if end.answered else 0.0
        cost = None
        if self.trunk is not None and self.trunk.get("rate_per_minute") is not None and end.answered:
            cost = round(float(self.trunk["rate_per_minute"]) * duration / 60.0, 6)
        stats = self.call.rtp_stats()
        metrics = {"duration_seconds": round(duration, 3), "packets_lost": stats.rx_lost,
                   "jitter_ms": round(stats.rx_jitter_ms, 2), "rx_packets": stats.rx_packets,
                   "tx_packets": stats.tx_packets, "dtmf_received": "".join(self.dtmf), **conversation_metrics}
        error = error_message(status, end)
        self.final = await events.transition(
            self.deps.db, self.id, status, allowed_from=ACTIVE_STATUSES,
            detail={"sip_status": end.sip_status, "hangup_by": end.hangup_by.value, "reason": end.reason},
            ended_at=datetime.now(UTC), hangup_cause=cause, sip_status=end.sip_status,
            disconnection_reason=reason, error_message=error, cost=cost, metrics=metrics, **recording,
        )
        self.ended.set()

    def _reason_from(self, end: CallEnd) -> DisconnectionReason:
        if not end.answered and end.status in _DIAL_REASONS:
            return _DIAL_REASONS[CallStatus(end.status)]
        if end.cause == HangupCause.MEDIA_TIMEOUT:
            return DisconnectionReason.MEDIA_TIMEOUT
        if end.cause == HangupCause.SYSTEM_SHUTDOWN:
            return DisconnectionReason.SHUTDOWN
        if end.hangup_by is HangupBy.REMOTE:
            return DisconnectionReason.USER_HANGUP
        if end.hangup_by is HangupBy.SYSTEM:
            return DisconnectionReason.ERROR
        return DisconnectionReason.AGENT_HANGUP


def error_message(status: str, end: CallEnd) -> str | None:
    """The engine's own words for a call that did not complete: the SIP status and reason phrase, or the
    local error (no answer in time, unreachable…). None for completed calls."""
    if status == CallStatus.COMPLETED:
        return None
    if end.hangup_by is HangupBy.LOCAL and end.sip_status is None and end.cause in _LOCAL_ENDS:
        return _LOCAL_ENDS[HangupCause(end.cause)]
    text = (end.reason or "").strip()
    if end.sip_status is not None and not text.startswith(str(end.sip_status)):
        text = f"{end.sip_status} {text}".strip()
    return text or str(end.cause)
