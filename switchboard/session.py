"""One live call, either direction: its status written as it changes, its media on the shared tick,
its greeting spoken, its limits enforced, its end classified and recorded."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from agents.conversation import Conversation
from agents.factory import KeyLookup, build_engine
from agents.knowledge import answerer_for
from agents.providers.base import SpeechToText, TextToSpeech
from agents.providers.registry import close_when, fallback_voice, make_stt, make_tts
from agents.voices import DEFAULT_VOICE_ID, VoiceCatalog
from media.endpointing import EndpointingConfig
from media.recording import StereoRecorder
from media.tick import StreamEvent
from sipcore.engine import Call, CallAnswered, CallEnd, CallEnded, CallRinging, DtmfReceived, HangupBy
from store import calls as call_store
from store.types import DB

from .media_loop import LegIO
from .tasks import TaskSet

log = logging.getLogger(__name__)

_DIAL_REASONS = {"busy": "dial_busy", "no_answer": "dial_no_answer", "failed": "dial_failed"}


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


class SessionIO(LegIO):
    """The call as the conversation runtime sees it (agents.conversation.CallIO): the media half of its
    leg on the loop, plus the session's call control and transcript."""

    def __init__(self, session: CallSession) -> None:
        super().__init__(session.deps.media, session.id, session.call.sample_rate or 8000)
        self.s = session

    async def hangup(self, reason: str) -> None:
        await self.s.hangup(reason)

    async def transfer(self, target: str) -> None:
        try:
            await self.s.transfer(target)
        except Exception as exc:  # the call goes on; the transcript says why
            await self.save_turn({"role": "system", "content": f"transfer to {target} failed: {exc}",
                                  "start_ms": self.elapsed_ms(), "end_ms": self.elapsed_ms()})

    async def send_dtmf(self, digits: str) -> None:
        await self.s.send_dtmf(digits)

    async def save_turn(self, turn: dict[str, Any]) -> None:
        await call_store.add_turn(self.s.deps.db, self.s.id, turn)


class CallSession:
    """Owns one engine call until it ends. ``run()`` is the session's one task."""

    def __init__(self, deps: SessionDeps, row: dict[str, Any], call: Call, *, trunk: dict[str, Any] | None = None):
        self.deps = deps
        self.row = row
        self.id: UUID = row["id"]
        self.call = call
        self.trunk = trunk
        self.agent: dict[str, Any] = row.get("agent_config") or {}
        self.reason: str | None = None  # why we ended it, when we did
        self.recorder: StereoRecorder | None = None
        self.answered_at: datetime | None = None
        self.ended = asyncio.Event()
        self.dtmf: list[str] = []
        self.conversation: Conversation | None = None
        self._tasks = TaskSet()

    # -- control from the API / runtime ----------------------------------------------------------------
    async def hangup(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        await self.call.hangup()

    async def send_dtmf(self, digits: str) -> None:
        await self.call.send_dtmf(digits)
        await call_store.add_event(self.deps.db, self.id, "dtmf_sent", "in_progress", {"digits": digits})

    async def transfer(self, target: str) -> None:
        """Blind transfer (REFER). Failure raises sipcore's TransferError and the call goes on."""
        await call_store.add_event(self.deps.db, self.id, "transfer", "in_progress", {"target": target})
        self.reason = "transferred"
        try:
            await self.call.transfer(target)
        except Exception as exc:
            self.reason = None
            await call_store.add_event(self.deps.db, self.id, "transfer_failed", "in_progress",
                                       {"target": target, "error": str(exc)})
            raise

    # -- the session -----------------------------------------------------------------------------------
    async def run(self) -> None:
        try:
            async for event in self.call.events():
                if isinstance(event, CallRinging):
                    await self._transition("ringing", ("pending",))
                elif isinstance(event, CallAnswered):
                    await self._answered()
                elif isinstance(event, DtmfReceived):
                    self.dtmf.append(event.digit)
                    if self.conversation is not None:
                        self.conversation.on_dtmf(event.digit)
                    await call_store.add_event(self.deps.db, self.id, "dtmf", "in_progress",
                                               {"digit": event.digit, "duration_ms": event.duration_ms})
                elif isinstance(event, CallEnded):
                    await self._ended(event.end)
        except Exception:
            log.exception("call %s: session failed", self.id)
            await self.call.hangup()
            end = self.call.end or await self.call.wait_ended()
            if not self.ended.is_set():
                self.reason = self.reason or "error"
                await self._ended(end)
        finally:
            self.ended.set()
            self._tasks.cancel()

    def _spawn(self, coro: Any, name: str) -> None:
        self._tasks.spawn(coro, f"call-{self.id}-{name}")

    async def _transition(self, status: str, allowed: tuple[str, ...], **fields: Any) -> dict[str, Any] | None:
        return await call_store.transition(self.deps.db, self.id, status, allowed_from=allowed, **fields)

    async def _answered(self) -> None:
        self.answered_at = datetime.now(UTC)
        fields: dict[str, Any] = {"answered_at": self.answered_at}
        if self.row.get("record", True):
            path = self.deps.recordings_dir / str(self.row.get("org_id") or "none") / f"{self.id}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            self.recorder = StereoRecorder(path, sample_rate=self.call.sample_rate or 8000)
            fields["recording_path"] = str(path)
        await self._transition("in_progress", ("pending", "ringing"), **fields)
        self.conversation = await self._conversation()
        self.deps.media.add(self.id, self.call, recorder=self.recorder, on_events=self._on_turn_events,
                            on_media_timeout=self._on_media_timeout, on_speech=self.conversation.on_speech,
                            endpointing=self._endpointing())
        self.conversation.start()
        max_duration = self.row.get("max_duration_seconds") or self.agent.get("max_duration_seconds")
        if max_duration:
            self._spawn(self._limit(float(max_duration)), "max-duration")

    async def _conversation(self) -> Conversation:
        agent = self.agent
        voice = self.deps.voices.get(agent.get("voice_id") or DEFAULT_VOICE_ID) or \
            self.deps.voices.get(DEFAULT_VOICE_ID)
        user_data = self.row.get("user_data") or {}
        engine = await build_engine(agent, user_data, keys=self.deps.keys(self.row.get("org_id")),
                                    knowledge=answerer_for(self.deps.knowledge, self.row.get("org_id"),
                                                           agent.get("knowledge_base_ids")),
                                    allow_private_tools=self.deps.allow_private_tools,
                                    call={"call_id": str(self.id), "agent_id": self.row.get("agent_id"),
                                          "from_number": self.row.get("from_number"),
                                          "to_number": self.row.get("to_number"),
                                          "direction": self.row.get("direction"),
                                          "metadata": self.row.get("metadata") or {}, "user_data": user_data})
        # Cloud speech providers are per call (the organization's keys); local ones are process-wide.
        keys = self.deps.keys(self.row.get("org_id"))
        stt = await make_stt(agent.get("stt"), keys, local=self.deps.stt, language=agent.get("language"))
        tts = self.deps.tts
        if voice is not None:
            tts = await make_tts(voice, keys, local=self.deps.tts, voice_settings=agent.get("voice_settings"))
            if tts is self.deps.tts:
                voice = fallback_voice(voice, self.deps.voices)
        owned = [p for p in (stt, tts) if p is not self.deps.stt and p is not self.deps.tts]
        if owned:
            self._spawn(close_when(self.ended, owned), "close-providers")
        local_voice = fallback_voice(voice, self.deps.voices) if voice is not None else None
        return Conversation(agent, user_data, SessionIO(self), stt=stt, tts=tts,
                            engine=engine, voice=voice.engine_voice if voice else "en-us",
                            agent_name=self.row.get("agent_name") or "agent",
                            phrases=(agent.get("stt") or {}).get("phrases") or None,
                            fallback_stt=self.deps.stt,
                            fallback_tts=(self.deps.tts, local_voice.engine_voice if local_voice else "en-us"))

    def _endpointing(self) -> EndpointingConfig:
        # speculate at 200 ms of silence (a streaming recogniser is finalised and the reply prepared, held),
        # speak at the endpointer's 600 ms (realtime branch; call-domain moves this file)
        return EndpointingConfig(interruptible=bool(self.agent.get("interruptible", True)), speculate_ms=200.0)

    async def _limit(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        log.info("call %s: max duration %.0f s reached", self.id, seconds)
        await self.hangup("max_duration_reached")

    def _on_media_timeout(self) -> None:
        log.warning("call %s: no media for the media timeout: hanging up", self.id)
        self._spawn(self.hangup("media_timeout"), "media-timeout")

    def _on_turn_events(self, events: list[StreamEvent]) -> None:
        """Turn-taking events from the media tick, for the conversation."""
        if self.conversation is not None:
            for ev in events:
                self.conversation.on_turn_event(ev.event)

    async def _ended(self, end: CallEnd) -> None:
        self.deps.media.remove(self.id)
        conversation_metrics: dict[str, Any] = {}
        if self.conversation is not None:
            try:
                conversation_metrics = await self.conversation.aclose()
            except Exception:
                log.exception("call %s: closing the conversation failed", self.id)
        if self.recorder is not None:
            try:
                await self.recorder.aclose()
            except Exception:
                log.exception("call %s: finalising the recording failed", self.id)
        reason = self.reason or self._reason_from(end)
        status = end.status
        cause = end.cause
        if reason == "transferred" and end.answered:
            status, cause = "completed", "NORMAL_CLEARING"
        duration = end.duration_s if end.answered else 0.0
        cost = None
        if self.trunk is not None and self.trunk.get("rate_per_minute") is not None and end.answered:
            cost = round(float(self.trunk["rate_per_minute"]) * duration / 60.0, 6)
        stats = self.call.rtp_stats()
        metrics = {"duration_seconds": round(duration, 3), "packets_lost": stats.rx_lost,
                   "jitter_ms": round(stats.rx_jitter_ms, 2), "rx_packets": stats.rx_packets,
                   "tx_packets": stats.tx_packets, "dtmf_received": "".join(self.dtmf), **conversation_metrics}
        await call_store.transition(
            self.deps.db, self.id, status, allowed_from=call_store.ACTIVE,
            detail={"sip_status": end.sip_status, "hangup_by": end.hangup_by.value, "reason": end.reason},
            ended_at=datetime.now(UTC), hangup_cause=cause, sip_status=end.sip_status,
            disconnection_reason=reason, cost=cost, metrics=metrics,
        )
        self.ended.set()

    def _reason_from(self, end: CallEnd) -> str:
        if not end.answered and end.status in _DIAL_REASONS:
            return _DIAL_REASONS[end.status]
        if end.cause == "MEDIA_TIMEOUT":
            return "media_timeout"
        if end.hangup_by is HangupBy.REMOTE:
            return "user_hangup"
        if end.hangup_by is HangupBy.SYSTEM:
            return "error"
        return "agent_hangup"
