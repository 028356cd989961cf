"""kamailio as the carrier: digest-auth registration and an outbound E.164 call."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from sipcore import AccountConfig, AccountHandle, CallStatus, RegistrationState, RegistrationStatus
from sipcore.baresip_engine import BaresipEngine
from store import orgs
from store import trunks as trunk_store
from store.crypto import SecretBox
from store.db import create_pool
from tests.support.carrier import TRUNK_PASSWORD, TRUNK_REALM, TRUNK_USER, Carrier
from tests.support.carrier import carrier as run_carrier
from tests.support.sip_counter import SipCounter
from tests.support.sip_peers import HOST, free_port, running, scenario, sipp_args
from trunks.supervisor import TrunkSupervisor

pytestmark = [
    pytest.mark.sip,
    pytest.mark.asyncio(loop_scope="session"),
]

@pytest_asyncio.fixture(loop_scope="session")
async def carrier(workdir: Path) -> AsyncIterator[Carrier]:
    async with run_carrier(workdir) as c:
        yield c


async def wait_state(
    updates: asyncio.Queue[tuple[AccountHandle, RegistrationStatus]],
    handle: AccountHandle,
    state: RegistrationState,
    limit: float = 10,
) -> RegistrationStatus:
    async def loop() -> RegistrationStatus:
        while True:
            h, status = await updates.get()
            if h is handle and status.state is state:
                return status

    return await asyncio.wait_for(loop(), limit)


async def test_registration_succeeds_and_fails_visibly(engine: BaresipEngine, carrier: Carrier) -> None:
    updates: asyncio.Queue[tuple[AccountHandle, RegistrationStatus]] = asyncio.Queue()
    engine.on_registration(lambda h, s: updates.put_nowait((h, s)))
    domain = f"{HOST}:{carrier.port}"
    good = await engine.add_account(
        AccountConfig(user="ua", domain=domain, password="secret", realm="siplab", register=True, expires=60)
    )
    ok = await wait_state(updates, good, RegistrationState.REGISTERED)
    assert ok.sip_status == 200 and ok.expires_at is not None
    assert engine.registration(good).state is RegistrationState.REGISTERED

    bad = await engine.add_account(
        AccountConfig(user="ua", domain=domain, password="wrong", register=True, expires=60)
    )
    failed = await wait_state(updates, bad, RegistrationState.FAILED)
    assert failed.sip_status in (401, 403)
    assert failed.error and failed.attempts == 1 and failed.next_retry_at is not None
    # retried with backoff, and it fails again
    again = await wait_state(updates, bad, RegistrationState.FAILED, limit=15)
    assert again.attempts == 2
    await engine.remove_account(bad)
    await engine.remove_account(good)
    assert engine.registration(good).state is RegistrationState.UNREGISTERED


async def test_outbound_e164_through_carrier_passes_407(
    engine: BaresipEngine, carrier: Carrier, workdir: Path
) -> None:
    trunk = await engine.add_account(
        AccountConfig(user="ua", domain=f"{HOST}:{carrier.port}", password="secret", register=False)
    )
    sf = scenario("uas_answer.xml", workdir)
    args = sipp_args(sf, carrier.pstn_port, free_port(4), "-m", "1", "-rtp_echo")
    async with running(args, cwd=workdir, limit=30, name="pstn") as pstn:
        await asyncio.sleep(0.3)
        call = await engine.dial(f"sip:+15551239999@{HOST}:{carrier.port}", account=trunk, answer_timeout=10)
        await call.wait_answered()
        await asyncio.sleep(0.5)
        await call.hangup()
        end = await call.wait_ended()
        result = await pstn.wait(10)
    assert result.rc == 0, result.stderr
    assert end.status is CallStatus.COMPLETED and end.answered


async def test_a_deleted_trunk_stops_registering_at_once(engine: BaresipEngine, carrier: Carrier,
                                                         database_url: str) -> None:
    """What DELETE /trunks/{id} does: delete the row, then the supervisor's `changed`. From then on the
    registrar sees at most one un-REGISTER (Expires 0) per trunk and never a REGISTER that renews: for a
    registered trunk, a failing one (retrying with backoff), and one deleted while its REGISTER is still
    in flight (a slow registrar), whose late success must not leave the engine refreshing on its own."""
    good = await SipCounter((HOST, carrier.port)).start()
    bad = await SipCounter((HOST, carrier.port)).start()
    slow = await SipCounter((HOST, carrier.port), reply_delay=0.4).start()  # < T1: no retransmissions
    pool = await create_pool(database_url, min_size=1, max_size=4)
    secrets = SecretBox("test-secret")
    supervisor = TrunkSupervisor(engine, pool, secrets)
    try:
        org, _ = await orgs.get_or_create_org(pool, f"kam-{uuid.uuid4().hex[:6]}")

        async def trunk(counter: SipCounter, password: str) -> dict[str, Any]:
            row = await trunk_store.trunks.insert(pool, org["id"], {
                "name": f"t{counter.port}", "host": HOST, "port": counter.port, "username": TRUNK_USER,
                "password_enc": secrets.encrypt(password), "realm": TRUNK_REALM, "register": True,
                "register_expires": 60, "codecs": ["PCMU"], "enabled": True})
            await supervisor.changed(row["id"])
            return row

        async def state(row: dict[str, Any], wanted: str) -> None:
            deadline = time.monotonic() + 10
            while (await trunk_store.get_any(pool, row["id"]))["reg_state"] != wanted:
                assert time.monotonic() < deadline, f"never {wanted}"
                await asyncio.sleep(0.05)

        registered, failing = await trunk(good, TRUNK_PASSWORD), await trunk(bad, "wrong")
        await state(registered, "registered")
        await state(failing, "failed")
        in_flight = await trunk(slow, TRUNK_PASSWORD)
        await slow.first("REGISTER")  # its first REGISTER is out; the answer is still held back

        deleted_at: dict[str, float] = {}
        for name, row in (("in_flight", in_flight), ("registered", registered), ("failing", failing)):
            assert await trunk_store.trunks.delete(pool, org["id"], row["id"])
            await supervisor.changed(row["id"])
            assert supervisor.account(row["id"]) is None
            deleted_at[name] = time.monotonic()
        await asyncio.sleep(6)  # the failing trunk's retries (2 s backoff) and any stray renewal show by now

        for name, counter in (("in_flight", slow), ("registered", good), ("failing", bad)):
            after = counter.requests("REGISTER", deleted_at[name])
            assert [r for r in after if r.expires] == [], (name, counter.seen)  # nothing renews a deleted trunk
        assert [r.expires for r in good.requests("REGISTER") if r.expires == 0] == [0]  # it left the registrar
        assert [r.expires for r in slow.requests("REGISTER") if r.expires == 0] == [0]  # even the late one
    finally:
        await supervisor.stop()
        await pool.close()
        for c in (good, bad, slow):
            c.close()
