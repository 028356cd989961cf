"""kamailio as the carrier: digest-auth registration and an outbound E.164 call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from sipcore import AccountConfig, AccountHandle, CallStatus, RegistrationState, RegistrationStatus
from sipcore.baresip_engine import BaresipEngine
from tests.support.carrier import Carrier
from tests.support.carrier import carrier as run_carrier
from tests.support.sip_peers import HOST, free_port, running, scenario, sipp_args

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
