"""The API's port to the call domain: what the HTTP layer asks of calls, and the plain types it passes.

The API owns this small interface and never imports the domain (``switchboard.calls`` implements it and
the composition root installs the implementation). Business rules — which destinations, agent, caller id
and trunk make a valid call, how a call is ended — live behind it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

from store.types import DB


class CallRejected(Exception):
    """A call request breaks a rule: ``message`` and the offending ``fields`` (name → messages)."""

    def __init__(self, message: str, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


@dataclass(frozen=True)
class NewCalls:
    """One call per destination, as the API received it (validated for shape, not for rules)."""

    destinations: list[str]
    batch: bool
    agent_id: UUID | None = None
    inline_agent: tuple[str, dict[str, Any]] | None = None  # (name, stored configuration)
    number_id: UUID | None = None
    from_number: str | None = None
    trunk_id: UUID | None = None
    record: bool | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    user_data: dict[str, Any] = field(default_factory=dict)
    max_duration_seconds: int | None = None
    webhooks: dict[str, Any] = field(default_factory=dict)


class EndOutcome(enum.StrEnum):
    """What ``end`` did: ``ended`` (its final status is written), ``requested`` (the worker running it
    was asked to hang up and has not confirmed yet), ``already_ended``, ``answered`` (cancel asked of an
    answered call), ``missing``."""

    ENDED = "ended"
    REQUESTED = "requested"
    ALREADY_ENDED = "already_ended"
    ANSWERED = "answered"
    MISSING = "missing"


class CallControl(Protocol):
    accepting: bool

    async def create(self, db: DB, org_id: UUID, request: NewCalls) -> list[dict[str, Any]]:
        """Write the calls as ``pending`` (all or none) and hand them to the dialer; raises CallRejected."""
        ...

    async def end(self, db: DB, org_id: UUID, call_id: UUID, reason: str, *, only_unanswered: bool) -> EndOutcome:
        """End a call (hang up a live one wherever it runs, or close one never placed); returns once its
        final status is written, or says why nothing was done."""
        ...

    async def send_dtmf(self, call_id: UUID, digits: str) -> bool: ...

    async def transfer(self, call_id: UUID, target: str) -> bool: ...

    def trunk_changed(self, trunk_id: UUID) -> None:
        """A trunk was created, edited or deleted: re-read it (re-register) without a restart."""
        ...
