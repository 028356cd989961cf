"""The SIP side of the server: engine, trunk accounts, dialer, inbound routing, sessions, media tick.

Implements the API's CallControl. Every call's row exists before its INVITE is sent or answered; every
refused inbound INVITE of a legitimate caller is recorded as a failed inbound call with its reason.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from agents.providers.espeak_tts import EspeakTTS
from agents.providers.local_stt import make_local_stt
from agents.voices import VoiceCatalog
from sipcore import create_engine, sip_to_q850
from sipcore.engine import Call, Engine, EngineConfig, IncomingCall, RefusedCall
from store import calls as call_store
from store import provider_keys
from store.crypto import SecretBox
from store.types import DB
from trunks import inbound
from trunks.supervisor import TrunkSupervisor

from .config import Settings
from .dialer import Dialer
from .media_loop import MediaLoop
from .session import CallSession, SessionDeps
from .tasks import TaskSet

log = logging.getLogger(__name__)

_RECORDED_REFUSALS = {"draining", "over_capacity", "handler_error"}  # scanners and floods are only logged


@dataclass
class Alias:
    """A SIP user that is not a phone number (``sip:demo@host``) routed to an agent."""

    user: str
    org_id: Any
    agent_id: Any


class Telephony:
    def __init__(self, settings: Settings, db: DB, secrets: SecretBox, voices: VoiceCatalog, *,
                 engine: Engine | None = None, aliases: list[Alias] | None = None, knowledge: Any = None) -> None:
        self.settings = settings
        self.db = db
        self.engine = engine or create_engine()
        self.aliases = {a.user.lower(): (a.org_id, a.agent_id) for a in aliases or []}
        self.media = MediaLoop(media_timeout=settings.media_timeout_seconds)
        self.supervisor = TrunkSupervisor(self.engine, db, secrets)
        self.sessions: dict[UUID, CallSession] = {}
        self._tasks = TaskSet()
        self.secrets = secrets
        self.stt = make_local_stt()  # SWITCHBOARD_LOCAL_STT
        self.deps = SessionDeps(db=db, media=self.media, tts=EspeakTTS(), stt=self.stt, voices=voices,
                                recordings_dir=settings.data_dir / "recordings", worker=settings.worker,
                                keys=self._key_lookup, allow_private_tools=settings.allow_private_urls,
                                knowledge=knowledge)
        self.dialer = Dialer(self.engine, db, self.supervisor, settings.worker, on_placed=self._placed,
                             capacity=lambda: self.settings.max_calls - self.engine.active_call_count,
                             answer_timeout=settings.answer_timeout_seconds,
                             setup_timeout=settings.setup_timeout_seconds)
        self.accepting = True
        self.running = False

    # -- lifecycle -------------------------------------------------------------------------------------
    async def start(self) -> None:
        await self.engine.start(EngineConfig(
            host=self.settings.sip_host, port=self.settings.sip_port, rtp_port_min=self.settings.rtp_port_min,
            rtp_port_max=self.settings.rtp_port_max, max_calls=self.settings.max_calls,
            user_agent="Switchboard", rtp_timeout=self.settings.media_timeout_seconds, catchall_user="switchboard",
        ))
        self.engine.set_incoming_handler(self._incoming)
        self.engine.on_refused(self._refused)
        await self.supervisor.start()
        self._spawn(self.stt.warm(), "stt-warm")  # recognisers are slow to create: make them before calls
        self.media.start()
        self.dialer.start()
        self.running = True
        log.info("SIP listening on %s:%d", *self.engine.listen_address)

    async def drain(self, grace: float) -> None:
        """Refuse new calls, let live ones finish (up to ``grace`` seconds), then hang up the rest."""
        self.accepting = False
        self.dialer.paused = True
        await self.engine.drain()
        if not await self.engine.wait_idle(grace):
            log.warning("drain timeout: hanging up %d call(s)", len(self.sessions))
            await asyncio.gather(*(s.hangup("error") for s in list(self.sessions.values())),
                                 return_exceptions=True)
        await self._wait_sessions(10)

    async def stop(self) -> None:
        await self.dialer.stop()
        for session in list(self.sessions.values()):
            session.reason = session.reason or "error"
        await self.engine.stop()
        await self._wait_sessions(10)
        await self.media.stop()
        await self.supervisor.stop()
        await self.stt.aclose()
        self.running = False

    async def _wait_sessions(self, grace: float) -> None:
        await self._tasks.wait(grace)

    def healthy(self) -> bool:
        return self.running

    def _key_lookup(self, org_id: Any) -> Any:
        async def lookup(provider_type: str, provider_name: str) -> str | None:
            if org_id is None:
                return None
            enc = await provider_keys.find(self.db, org_id, provider_type, provider_name)
            return self.secrets.decrypt(enc) if enc else None

        return lookup

    # -- CallControl -----------------------------------------------------------------------------------
    def submit(self, call_ids: list[UUID]) -> None:
        self.dialer.wake()

    async def hangup(self, call_id: UUID, reason: str) -> bool:
        session = self.sessions.get(call_id)
        if session is None:
            return False
        await session.hangup(reason)
        await asyncio.wait_for(session.ended.wait(), 10)
        return True

    async def send_dtmf(self, call_id: UUID, digits: str) -> bool:
        session = self.sessions.get(call_id)
        if session is None or session.answered_at is None:
            return False
        await session.send_dtmf(digits)
        return True

    async def transfer(self, call_id: UUID, target: str) -> bool:
        session = self.sessions.get(call_id)
        if session is None or session.answered_at is None:
            return False
        await session.transfer(target)
        return True

    def trunk_changed(self, trunk_id: UUID) -> None:
        self._spawn(self.supervisor.changed(trunk_id), f"trunk-{trunk_id}")

    # -- sessions --------------------------------------------------------------------------------------
    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        return self._tasks.spawn(coro, name)

    def _start_session(self, row: dict[str, Any], call: Call, trunk: dict[str, Any] | None) -> CallSession:
        session = CallSession(self.deps, row, call, trunk=trunk)
        self.sessions[row["id"]] = session

        async def run() -> None:
            try:
                await session.run()
            finally:
                self.sessions.pop(row["id"], None)

        self._spawn(run(), f"call-{row['id']}")
        return session

    def _placed(self, row: dict[str, Any], call: Call, trunk: dict[str, Any] | None) -> None:
        self._start_session(row, call, trunk)

    # -- inbound ---------------------------------------------------------------------------------------
    async def _incoming(self, incoming: IncomingCall) -> None:
        source = f"{incoming.source_host}:{incoming.source_port}" if incoming.source_host else None
        decision = await inbound.route(self.db, incoming.request_user, incoming.source_host, self.aliases)
        base = {"from_number": incoming.from_user or None, "sip_call_id": incoming.sip_call_id,
                "sip_source": source, "engine_call_id": incoming.engine_call_id, "worker_id": self.settings.worker,
                "started_at": datetime.now(UTC)}
        if isinstance(decision, inbound.Refusal):
            await self._record_refusal(decision.org_id, decision.to_number, decision.status, decision.reason,
                                       base, decision.number)
            await incoming.call.reject(decision.status, decision.reason)
            return
        agent = decision.agent
        row = await call_store.insert_inbound(self.db, decision.org_id, {
            **base, "status": "ringing", "to_number": decision.to_number, "agent_id": agent["id"],
            "agent_name": agent["name"], "agent_config": agent["config"],
            "number_id": decision.number["id"] if decision.number else None,
            "trunk_id": decision.number["trunk_id"] if decision.number else None,
            "record": bool(agent["config"].get("recording_enabled", True)),
            "max_duration_seconds": agent["config"].get("max_duration_seconds"),
        })  # the row exists before the INVITE is answered
        trunk = self.supervisor.trunk(row["trunk_id"]) if row["trunk_id"] else None
        self._start_session(row, incoming.call, trunk)
        await incoming.call.answer()

    def _refused(self, refused: RefusedCall) -> None:
        inc = refused.incoming
        if refused.reason not in _RECORDED_REFUSALS:
            log.info("refused INVITE from %s (%s): %s", inc.source_host, inc.user_agent, refused.reason)
            return
        self._spawn(self._record_refused_by_engine(refused), "refused-call")

    async def _record_refused_by_engine(self, refused: RefusedCall) -> None:
        inc = refused.incoming
        decision = await inbound.route(self.db, inc.request_user, inc.source_host, self.aliases)
        org_id = decision.org_id
        number = decision.number
        to_number = decision.to_number
        base = {"from_number": inc.from_user or None, "sip_call_id": inc.sip_call_id, "worker_id": self.settings.worker,
                "sip_source": f"{inc.source_host}:{inc.source_port}" if inc.source_host else None,
                "started_at": datetime.now(UTC)}
        await self._record_refusal(org_id, to_number, refused.desired_status, refused.reason, base, number)

    async def _record_refusal(self, org_id: Any, to_number: str, status: int, reason: str, base: dict[str, Any],
                              number: dict[str, Any] | None) -> None:
        now = datetime.now(UTC)
        await call_store.insert_inbound(self.db, org_id, {
            **base, "status": "failed", "to_number": to_number, "ended_at": now, "sip_status": status,
            "hangup_cause": sip_to_q850(status), "disconnection_reason": reason,
            "number_id": number["id"] if number else None, "trunk_id": number["trunk_id"] if number else None,
        })


