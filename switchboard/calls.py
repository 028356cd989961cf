"""Call control: what the API asks of live calls. The SIP side implements it; until a dialer is running,
``IdleCallControl`` leaves new calls pending (no progress is faked)."""

from __future__ import annotations

from typing import Protocol
from uuid import UUID


class CallControl(Protocol):
    accepting: bool

    def submit(self, call_ids: list[UUID]) -> None:
        """New pending outbound calls exist (a hint: the dialer also polls)."""

    async def hangup(self, call_id: UUID, reason: str) -> bool:
        """Hang up a live call this worker owns; False when it has no such live call."""

    async def send_dtmf(self, call_id: UUID, digits: str) -> bool: ...

    async def transfer(self, call_id: UUID, target: str) -> bool: ...

    def trunk_changed(self, trunk_id: UUID) -> None:
        """A trunk was created, edited or deleted: re-read it (re-register) without a restart."""


class IdleCallControl:
    """No SIP engine attached: nothing is placed, nothing is live."""

    accepting = True

    def submit(self, call_ids: list[UUID]) -> None:
        return None

    async def hangup(self, call_id: UUID, reason: str) -> bool:
        return False

    async def send_dtmf(self, call_id: UUID, digits: str) -> bool:
        return False

    async def transfer(self, call_id: UUID, target: str) -> bool:
        return False

    def trunk_changed(self, trunk_id: UUID) -> None:
        return None
