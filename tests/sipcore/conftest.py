"""Fixtures for the sipcore tests.

One baresip Runtime per process is a hard limit, so a single engine is
started for the whole session on the session event loop; each test gets it
back clean (handlers reset, no live calls, not draining).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from sipcore import EngineConfig
from sipcore.baresip_engine import BaresipEngine
from tests.support.sip_peers import HOST, free_port

MAX_CALLS = 4


@pytest.fixture(scope="session")
def engine_config() -> EngineConfig:
    rtp = free_port(200)
    return EngineConfig(
        host=HOST,
        port=free_port(),
        rtp_port_min=rtp,
        rtp_port_max=rtp + 199,
        max_calls=MAX_CALLS,
        user_agent="Switchboard-test",
        invite_rate=50.0,
        invite_burst=100,
        tcp_idle_timeout=3.0,
    )


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def session_engine(engine_config: EngineConfig) -> AsyncIterator[BaresipEngine]:
    engine = BaresipEngine()
    await engine.start(engine_config)
    yield engine
    await engine.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def engine(session_engine: BaresipEngine) -> AsyncIterator[BaresipEngine]:
    yield session_engine
    e = session_engine
    for call in e.calls():
        await call.hangup()
    assert await e.wait_idle(10), "calls left over after a test"
    e.set_incoming_handler(None)
    e.on_refused(None)
    e._draining = False  # test-only: drain is one-way in production
    e.max_calls = MAX_CALLS
    for entry in list(e._accounts.values()):
        await e.remove_account(entry.handle)
    await asyncio.sleep(0.05)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path
