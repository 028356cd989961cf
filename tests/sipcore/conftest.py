"""Fixtures for the sipcore tests.

One baresip Runtime per process is a hard limit, so a single engine is
started for the whole session on the session event loop; each test gets it
back clean (handlers reset, no live calls, not draining).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

# This directory is named like the package under test. With a conftest in
# tests/ (no __init__.py), pytest puts tests/ on sys.path and tests/sipcore
# would shadow the real package as a namespace package: put the project root
# first and drop a shadow import if one already happened.
_ROOT = str(Path(__file__).resolve().parents[2])
if sys.path[:1] != [_ROOT]:
    sys.path.insert(0, _ROOT)
if "sipcore" in sys.modules and getattr(sys.modules["sipcore"], "__file__", None) is None:
    for _name in [m for m in sys.modules if m == "sipcore" or m.startswith("sipcore.")]:
        del sys.modules[_name]

from sip_peers import HOST, free_port  # noqa: E402

from sipcore import EngineConfig  # noqa: E402
from sipcore.baresip_engine import BaresipEngine  # noqa: E402

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
        catchall_user="switchboard",
        user_agent="Switchboard-test",
        invite_rate=50.0,
        invite_burst=100,
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
