"""The SIP side of this worker: engine and trunk accounts, the dialer, inbound routing, the sessions and
the media tick — started and stopped in order. Implements the API's CallControl (``api.control``) for
the calls live here, on top of ``OfflineCalls``."""

from __future__ import annotations

import asyncio
import logging
import sys
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from agents.providers.local_stt import make_local_stt
from agents.providers.local_tts import LocalTTS
from agents.providers.preload import preload
from agents.voices import VoiceCatalog
from sipcore import create_engine
from sipcore.causes import DisconnectionReason
from sipcore.engine import Engine, EngineConfig
from store import calls as call_store
from store import provider_keys
from store.crypto import SecretBox
from store.types import DB
from trunks.supervisor import TrunkSupervisor

from ..config import Settings
from ..platform import sched
from ..platform.stallwatch import StallWatch, freeze_startup_objects, thaw_startup_objects
from ..tasks import TaskSet
from .control import OfflineCalls, close_unplaced
from .dialer import Dialer
from .inbound import InboundRouter
from .leg import CallLeg
from .media_loop import MediaLoop
from .overload import Overload
from .session import CallSession, SessionDeps

log = logging.getLogger(__name__)
GIL_SWITCH_SECONDS = 0.001

HANGUP_POLL_SECONDS = 0.5  # how often this worker looks for hang-ups other workers asked of its calls
OWNERLESS_TTL_SECONDS = 7 * 86400.0  # ownerless call rows (from earlier versions) expire after a week


@dataclass
class Alias:
    """A SIP user that is not a phone number (``sip:demo@host``) routed to an agent."""

    user: str
    org_id: Any
    agent_id: Any


class Telephony(OfflineCalls):
    def __init__(self, settings: Settings, db: DB, secrets: SecretBox, voices: VoiceCatalog, *,
                 engine: Engine | None = None, aliases: list[Alias] | None = None, knowledge: Any = None) -> None:
        super().__init__()
        self.settings = settings
        self.db = db
        self.worker: str = settings.worker
        self.engine = engine or create_engine()
        self.media = MediaLoop(media_timeout=settings.media_timeout_seconds)
        self.supervisor = TrunkSupervisor(self.engine, db, secrets)
        self._tasks = TaskSet()  # calls and the work they start
        self._service = TaskSet()  # the worker's own background loops, closed at stop
        self.secrets = secrets
        self.stt = make_local_stt()  # SWITCHBOARD_LOCAL_STT
        # bounds the shared recogniser's queue; admission; /health
        self.overload = Overload(self.stt, active_calls=lambda: len(self.sessions))
        # logs where the event loop is stuck when the media tick cannot run (all threads' stacks to stderr
        # after stall_dump_seconds, when set: a diagnostic)
        self.stallwatch = StallWatch(threshold=settings.stall_log_ms / 1000,
                                     dump_after=settings.stall_dump_seconds or None)
        self.deps = SessionDeps(db=db, media=self.media, tts=LocalTTS(), stt=self.stt, voices=voices,
                                recordings_dir=settings.data_dir / "recordings", worker=settings.worker,
                                keys=self._key_lookup, allow_private_tools=settings.allow_private_urls,
                                knowledge=knowledge)
        self.dialer = Dialer(self.engine, db, self.supervisor, settings.worker, on_placed=self.start_session,
                             capacity=lambda: self.settings.max_calls - self.engine.active_call_count,
                             answer_timeout=settings.answer_timeout_seconds,
                             setup_timeout=settings.setup_timeout_seconds)
        self.inbound = InboundRouter(db, settings.worker, {a.user.lower(): (a.org_id, a.agent_id) for a in aliases or []},
                                     start_session=self.start_session, trunk=self.supervisor.trunk, tasks=self._tasks,
                                     admit=self.overload.admit)
        self.accepting = True
        self.running = False
        self._loop_policy: sched.ThreadPolicy | None = None  # the loop thread's policy before SCHED_RR

    # -- lifecycle -------------------------------------------------------------------------------------
    async def start(self) -> None:
        # the cloud SDKs, imported in a thread while the engine starts, and waited for before any call is taken
        # (imported on the loop by the first call, they made every call's audio late: agents.providers.preload)
        sdks = asyncio.get_running_loop().run_in_executor(None, preload)
        realtime = self._wants_realtime()
        try:
            await self.engine.start(EngineConfig(
                host=self.settings.sip_host, port=self.settings.sip_port, rtp_port_min=self.settings.rtp_port_min,
                rtp_port_max=self.settings.rtp_port_max, max_calls=self.settings.max_calls,
                user_agent=self.settings.sip_user_agent, rtp_timeout=self.settings.media_timeout_seconds,
                public_address=self.settings.public_ip, jitter_buffer_ms=self.settings.jitter_buffer_ms,
                timer_slack_us=self.settings.sip_timer_slack_us,
                realtime_priority=sched.PRIORITY if realtime else 0,
            ))
        finally:
            log.info("provider SDKs loaded in %.2f s", await sdks)  # preload() itself never raises
        self.engine.set_incoming_handler(self.inbound.incoming)
        self.engine.on_refused(self.inbound.refused)
        await self.supervisor.start()
        self._service.spawn(self.stt.warm(), "stt-warm")  # recognisers are slow to create: make them before calls
        self._service.spawn(self._housekeeping(), "call-housekeeping")
        frozen = freeze_startup_objects()  # a full collection then scans what calls allocate, not start-up's
        log.debug("%d start-up objects frozen out of the garbage collector's scans", frozen)
        # the tick shares the GIL with the engine's event thread, the VAD thread, recorders and executors: a
        # thread that holds it makes the loop wait up to a switch interval (5 ms by default) at every contest
        sys.setswitchinterval(GIL_SWITCH_SECONDS)
        if realtime:
            self._enter_realtime()
        self.media.on_lateness = self.overload.observe_tick
        self.media.start()
        self.overload.start(fed_by_tick=True)
        self.stallwatch.start()
        self.dialer.start()
        self.running = True
        log.info("SIP listening on %s:%d", *self.engine.listen_address)

    def _wants_realtime(self) -> bool:
        """SWITCHBOARD_REALTIME: "on" always tries (and warns when refused), "auto" only when this process may
        (root, CAP_SYS_NICE or ulimit -r >= 1), "off" never."""
        mode = self.settings.realtime
        if mode == "auto":
            if sched.permitted():
                return True
            log.info("audio threads keep normal scheduling: SCHED_RR is not permitted here (CAP_SYS_NICE or "
                     "RLIMIT_RTPRIO >= %d gives it; see SWITCHBOARD_REALTIME)", sched.PRIORITY)
            return False
        return mode == "on"

    def _enter_realtime(self) -> None:
        """The event loop's thread (the media tick's) in SCHED_RR, ahead of every normal thread on the box
        (switchboard.platform.sched); restored at stop, for a process that goes on without the worker."""
        try:
            self._loop_policy = sched.make_realtime()
        except PermissionError:
            log.warning("the media tick's thread keeps normal scheduling: SCHED_RR needs CAP_SYS_NICE or "
                        "RLIMIT_RTPRIO >= %d (ulimit -r; Docker: --cap-add SYS_NICE); SWITCHBOARD_REALTIME=off "
                        "silences this", sched.PRIORITY)
            return
        log.info("the media tick's thread runs SCHED_RR at priority %d", sched.PRIORITY)

    @property
    def realtime(self) -> dict[str, bool]:
        """Which audio threads run real-time: the event loop's (the media tick) and the SIP engine's."""
        return {"media_tick": self._loop_policy is not None, "sip_engine": self.engine.stats().realtime}

    async def drain(self, grace: float) -> None:
        """Refuse new calls, let live ones finish (up to ``grace`` seconds), then hang up the rest."""
        self.accepting = False
        self.dialer.paused = True
        await self.engine.drain()
        if not await self.engine.wait_idle(grace):
            log.warning("drain timeout: hanging up %d call(s)", len(self.sessions))
            for s in list(self.sessions.values()):
                s.request_hangup(DisconnectionReason.SHUTDOWN)
        await self._wait_sessions(10)

    async def stop(self) -> None:
        await self.dialer.stop()
        for session in list(self.sessions.values()):
            session.reason = session.reason or DisconnectionReason.SHUTDOWN
        await self.engine.stop()
        await self._wait_sessions(10)
        await self._service.close()
        await self._tasks.close()  # what outlived the grace
        await self.media.stop()
        if self._loop_policy is not None:
            sched.restore(self._loop_policy)
            self._loop_policy = None
        await self.overload.stop()
        self.stallwatch.stop()
        await self.supervisor.stop()
        await self.stt.aclose()
        await self.deps.tts.aclose()
        thaw_startup_objects()
        self.running = False

    async def _wait_sessions(self, grace: float) -> None:
        await self._tasks.wait(grace)

    def healthy(self) -> bool:
        return self.running

    def _key_lookup(self, org_id: Any) -> Any:
        return provider_keys.lookup(self.db, self.secrets, org_id)

    # -- CallControl (what OfflineCalls does not) ------------------------------------------------------
    def submit(self, call_ids: list[UUID]) -> None:
        self.dialer.wake()

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
        self._tasks.spawn(self.supervisor.changed(trunk_id), f"trunk-{trunk_id}")

    # -- sessions --------------------------------------------------------------------------------------
    def start_session(self, row: dict[str, Any], call: CallLeg, trunk: dict[str, Any] | None) -> CallSession:
        session = CallSession(self.deps, row, call, trunk=trunk)
        self.sessions[row["id"]] = session

        async def run() -> None:
            try:
                await session.run()
            finally:
                self.sessions.pop(row["id"], None)

        self._tasks.spawn(run(), f"call-{row['id']}")
        return session

    async def _housekeeping(self) -> None:
        """Hang-ups other workers asked of this worker's calls; ownerless rows expiring."""
        passes = 0
        while True:
            await asyncio.sleep(HANGUP_POLL_SECONDS)
            try:
                for req in await call_store.hangups_requested(self.db, self.worker):
                    session = self.sessions.get(req["id"])
                    if session is not None:
                        session.request_hangup(req["hangup_requested"])
                    else:  # nothing live here for it (its session is gone): close the row
                        await close_unplaced(self.db, req, req["hangup_requested"])
                if passes % 7200 == 0:  # hourly
                    expired = await call_store.expire_ownerless(self.db, OWNERLESS_TTL_SECONDS)
                    if expired:
                        log.info("expired %d call row(s) without an organization", expired)
                passes += 1
            except Exception:
                log.exception("call housekeeping failed")
