"""Inbound calls: route each INVITE to its tenant and agent, start its session, or refuse it.

A refusal is recorded as a failed call only when it belongs to an organization: the number is theirs, or
the INVITE came from an address inside exactly one organization's trunk ``inbound_cidrs`` (their operator
then sees mis-routed numbers in ``GET /calls?status=failed``). Strangers' INVITEs are counted
(``RefusalCounter``, for metrics) and logged by sample, and write no row.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agents.config import AgentConfig
from sipcore import sip_to_q850
from sipcore.causes import CallStatus, DisconnectionReason
from sipcore.engine import Call, IncomingCall, RefusedCall
from store import trunks as trunk_store
from store.types import DB
from trunks import inbound as router

from ..tasks import TaskSet
from . import events

log = logging.getLogger(__name__)

RECORDED_ENGINE_REFUSALS = {"draining", "over_capacity", "handler_error"}  # scanners and floods: counted only
LOG_SAMPLE_SECONDS = 60.0  # at most one log line per refusal reason per minute (plus how many were not logged)

StartSession = Callable[[dict[str, Any], Call, dict[str, Any] | None], Any]


@dataclass
class RefusalCounter:
    """Inbound INVITEs refused, by reason (a metrics exporter reads ``counts``), with sampled logging."""

    counts: Counter[str] = field(default_factory=Counter)
    _logged_at: dict[str, float] = field(default_factory=dict)
    _unlogged: Counter[str] = field(default_factory=Counter)

    def count(self, reason: str, source: str | None, detail: str) -> None:
        self.counts[reason] += 1
        now = time.monotonic()
        if now - self._logged_at.get(reason, -LOG_SAMPLE_SECONDS) >= LOG_SAMPLE_SECONDS:
            skipped = self._unlogged.pop(reason, 0)
            self._logged_at[reason] = now
            log.info("refused INVITE from %s: %s (%s)%s", source, reason, detail,
                     f"; {skipped} more like it since the last line" if skipped else "")
        else:
            self._unlogged[reason] += 1


class InboundRouter:
    def __init__(self, db: DB, worker: str, aliases: dict[str, tuple[Any, Any]], *, start_session: StartSession,
                 trunk: Callable[[Any], dict[str, Any] | None], tasks: TaskSet,
                 admit: Callable[[], bool] = lambda: True) -> None:
        self.db = db
        self.worker = worker
        self.aliases = aliases
        self.start_session = start_session
        self.trunk = trunk
        self.refusals = RefusalCounter()
        self._tasks = tasks
        self.admit = admit  # False while this worker's audio is about to slip: refuse new calls (503)

    async def incoming(self, incoming: IncomingCall) -> None:
        """The engine's incoming handler: answer (the row exists first) or refuse."""
        decision = await router.route(self.db, incoming.request_user, incoming.source_host, self.aliases)
        if not isinstance(decision, router.Refusal) and not self.admit():  # before frames start to slip
            decision = router.Refusal(503, DisconnectionReason.OVERLOADED, decision.to_number, decision.org_id,
                                      decision.number)
        if isinstance(decision, router.Refusal):
            await self._refusal(incoming, decision.status, decision.reason, decision)
            await incoming.call.reject(decision.status, decision.reason)
            return
        agent = decision.agent
        config = agent["config"]
        typed = AgentConfig.load(config)
        row = await events.inbound(self.db, decision.org_id, {
            **self._base(incoming), "status": CallStatus.RINGING, "to_number": decision.to_number,
            "agent_id": agent["id"], "agent_name": agent["name"], "agent_config": config,
            "engine_call_id": incoming.engine_call_id,
            "number_id": decision.number["id"] if decision.number else None,
            "trunk_id": decision.number["trunk_id"] if decision.number else None,
            "record": typed.recording_enabled,
            "max_duration_seconds": typed.max_duration_seconds,
        })  # the row exists before the INVITE is answered
        self.start_session(row, incoming.call, self.trunk(row["trunk_id"]) if row["trunk_id"] else None)
        await incoming.call.answer()

    def refused(self, refused: RefusedCall) -> None:
        """The engine's refused-call callback (drain, capacity, protection, handler errors)."""
        inc = refused.incoming
        if refused.reason not in RECORDED_ENGINE_REFUSALS:
            self.refusals.count(refused.reason, inc.source_host, inc.user_agent or "")
            return
        self._tasks.spawn(self._record_engine_refusal(refused), "refused-call")

    async def _record_engine_refusal(self, refused: RefusedCall) -> None:
        inc = refused.incoming
        decision = await router.route(self.db, inc.request_user, inc.source_host, self.aliases)
        await self._refusal(inc, refused.desired_status, refused.reason, decision)

    def _base(self, inc: IncomingCall) -> dict[str, Any]:
        return {"from_number": inc.from_user or None, "sip_call_id": inc.sip_call_id, "worker_id": self.worker,
                "sip_source": f"{inc.source_host}:{inc.source_port}" if inc.source_host else None,
                "started_at": datetime.now(UTC)}

    async def _refusal(self, inc: IncomingCall, status: int, reason: str,
                       decision: router.Route | router.Refusal) -> None:
        org_id = decision.org_id
        number = decision.number
        if org_id is None:
            org_id = await self._org_by_source(inc.source_host)
        if org_id is None:
            self.refusals.count(reason, inc.source_host, f"to {decision.to_number!r}")
            return
        self.refusals.counts[reason] += 1
        log.warning("inbound call to %s from %s refused: %d %s", decision.to_number, inc.source_host, status, reason)
        await events.inbound(self.db, org_id, {
            **self._base(inc), "status": CallStatus.FAILED, "to_number": decision.to_number,
            "ended_at": datetime.now(UTC), "sip_status": status, "hangup_cause": sip_to_q850(status),
            "disconnection_reason": reason, "error_message": f"refused with SIP {status}: {reason.replace('_', ' ')}",
            "number_id": number["id"] if number else None, "trunk_id": number["trunk_id"] if number else None,
        })

    async def _org_by_source(self, source_host: str | None) -> Any:
        """The one organization whose trunk ``inbound_cidrs`` contain the source, if exactly one does."""
        if not source_host:
            return None
        try:
            ipaddress.ip_address(source_host)
        except ValueError:
            return None
        orgs = await trunk_store.orgs_by_source(self.db, source_host)
        return orgs[0] if len(orgs) == 1 else None
