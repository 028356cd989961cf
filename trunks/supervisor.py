"""Registration supervision: one engine account per enabled trunk, kept in step with the database.

Trunks created, edited or deleted through the API are re-applied at once (``changed``) without a restart;
every registration state change the engine reports is written to the trunk's row, which
``GET /trunks/{id}/status`` reads. The engine retries failed registrations with backoff.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sipcore.engine import AccountHandle, Engine, RegistrationState, RegistrationStatus
from store import trunks as trunk_store
from store.crypto import SecretBox
from store.types import DB

from .accounts import account_config

log = logging.getLogger(__name__)


class TrunkSupervisor:
    def __init__(self, engine: Engine, db: DB, secrets: SecretBox) -> None:
        self.engine = engine
        self.db = db
        self.secrets = secrets
        self._accounts: dict[UUID, AccountHandle] = {}
        self._trunks: dict[UUID, dict[str, Any]] = {}
        self._by_handle: dict[int, UUID] = {}
        self._lock = asyncio.Lock()
        self._writes: set[asyncio.Task[None]] = set()
        self._last_write: dict[UUID, asyncio.Task[None]] = {}  # per trunk: writes land in the order made
        engine.on_registration(self._on_registration)

    async def start(self) -> None:
        for trunk in await trunk_store.all_enabled(self.db):
            await self._apply(trunk["id"], trunk)

    async def stop(self) -> None:
        for trunk_id in list(self._accounts):
            await self._drop(trunk_id)
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)

    def account(self, trunk_id: UUID) -> AccountHandle | None:
        return self._accounts.get(trunk_id)

    def trunk(self, trunk_id: UUID) -> dict[str, Any] | None:
        return self._trunks.get(trunk_id)

    async def changed(self, trunk_id: UUID) -> None:
        """Re-read one trunk and re-create its account (re-registering it); a deleted or disabled trunk's
        account is removed at once (unregistered; a REGISTER in flight is undone, see the engine).
        The row is read under the lock: changes applied one after another each see the latest row, so a
        create's change can never re-create the account after the delete's change removed it."""
        async with self._lock:
            trunk = await trunk_store.get_any(self.db, trunk_id)
            await self._apply_locked(trunk_id, trunk if trunk and trunk["enabled"] else None)

    async def _apply(self, trunk_id: UUID, trunk: dict[str, Any] | None) -> None:
        async with self._lock:
            await self._apply_locked(trunk_id, trunk)

    async def _apply_locked(self, trunk_id: UUID, trunk: dict[str, Any] | None) -> None:
        await self._drop(trunk_id)
        if trunk is None:
            return
        password = self.secrets.decrypt(trunk["password_enc"]) if trunk["password_enc"] else ""
        config = account_config(trunk, password)
        try:
            handle = await self.engine.add_account(config)
        except Exception as exc:  # a bad host etc.: visible on the trunk, never a crash
            log.warning("trunk %s: account refused by the SIP engine: %s", trunk_id, exc)
            await self._write(trunk_id, "failed", str(exc), None)
            return
        self._accounts[trunk_id] = handle
        self._trunks[trunk_id] = trunk
        self._by_handle[handle.id] = trunk_id
        # queued before any outcome the engine reports for this account, so it cannot overwrite one
        state = "registering" if config.register else "unregistered"
        await self._write(trunk_id, state, None, None)

    async def _drop(self, trunk_id: UUID) -> None:
        handle = self._accounts.pop(trunk_id, None)
        self._trunks.pop(trunk_id, None)
        if handle is not None:
            self._by_handle.pop(handle.id, None)
            try:
                await self.engine.remove_account(handle)
            except Exception:
                log.exception("trunk %s: removing its account failed", trunk_id)

    def _on_registration(self, handle: AccountHandle, status: RegistrationStatus) -> None:
        trunk_id = self._by_handle.get(handle.id)
        if trunk_id is None:
            return
        error = None
        if status.state is RegistrationState.FAILED or (status.state is RegistrationState.REGISTERING
                                                        and status.error):  # retrying: keep the last error
            error = f"{status.sip_status} {status.error}".strip() if status.sip_status else status.error or "failed"
        expires = datetime.fromtimestamp(status.expires_at, UTC) if status.expires_at else None
        self._write(trunk_id, status.state.value, error, expires)

    def _write(self, trunk_id: UUID, state: str, error: str | None, expires: datetime | None) -> asyncio.Task[None]:
        """Write a registration state after the trunk's earlier writes (each write is its own task on its
        own pooled connection: unchained, a stale state could commit last and stick)."""
        previous = self._last_write.get(trunk_id)

        async def write() -> None:
            if previous is not None:
                await asyncio.gather(previous, return_exceptions=True)
            await trunk_store.set_registration(self.db, trunk_id, state, error, expires)

        task = asyncio.get_running_loop().create_task(write(), name=f"trunk-registration-{trunk_id}")
        self._last_write[trunk_id] = task
        self._writes.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._writes.discard(t)
            if self._last_write.get(trunk_id) is t:
                del self._last_write[trunk_id]

        task.add_done_callback(done)
        return task
