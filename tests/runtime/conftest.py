"""The call runtime on real parts: session, media tick (Silero VAD), pocketsphinx, espeak-ng, PostgreSQL;
the engine call is a loopback that scripts the caller in real time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agents.providers.local_tts import LocalTTS
from agents.providers.pocketsphinx_stt import PocketsphinxSTT
from agents.providers.sphinx_pool import DecoderPool
from agents.voices import VoiceCatalog
from api.models.agents import DEFAULTS
from sipcore.loopback import RATE, LoopbackCall
from store import calls as call_store
from store import orgs
from switchboard.calls import events
from switchboard.calls.media_loop import MediaLoop
from switchboard.calls.session import CallSession, SessionDeps
from tests.agents.agent_speech import utterance

_POOL: DecoderPool | None = None
_VOICES: VoiceCatalog | None = None


def speech(text: str) -> np.ndarray:
    """``text`` spoken by espeak-ng at the line rate, with a little noise."""
    return utterance(text, rate=RATE, pad_s=0.1)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), np.int16)


def agent_config(**fields: Any) -> dict[str, Any]:
    return {**{k: v for k, v in DEFAULTS.items() if k not in ("name", "enabled")}, **fields}


class Running:
    def __init__(self, deps: SessionDeps, session: CallSession, call: LoopbackCall, task: asyncio.Task[None]):
        self.deps, self.session, self.call, self.task = deps, session, call, task
        self.id = session.id

    async def turns(self) -> list[dict[str, Any]]:
        return await call_store.transcript(self.deps.db, self.id)

    async def wait_turns(self, n: int, limit: float = 25.0, role: str | None = None) -> list[dict[str, Any]]:
        deadline = time.monotonic() + limit
        while True:
            turns = [t for t in await self.turns() if role is None or t["role"] == role]
            if len(turns) >= n:
                return turns
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {n} turns, have: {[(t['role'], t['content']) for t in turns]}")
            await asyncio.sleep(0.05)

    async def ended(self, limit: float = 15.0) -> dict[str, Any]:
        await asyncio.wait_for(self.task, limit)
        return await call_store.calls.get(self.deps.db, self.session.row["org_id"], self.id)


@pytest.fixture
async def deps(db, tmp_path: Path) -> AsyncIterator[SessionDeps]:
    global _POOL, _VOICES
    _POOL = _POOL or DecoderPool(2)
    _VOICES = _VOICES or VoiceCatalog.load_local()
    media = MediaLoop(media_timeout=30)
    media.start()

    def keys(org_id: Any) -> Any:
        async def lookup(provider_type: str, provider_name: str) -> str | None:
            return None

        return lookup

    yield SessionDeps(db=db, media=media, tts=LocalTTS(), stt=PocketsphinxSTT(_POOL, interim_results=False),
                      voices=_VOICES, recordings_dir=tmp_path, worker="test", keys=keys, allow_private_tools=True)
    await media.stop()


@pytest.fixture
async def start_call(deps: SessionDeps):
    running: list[Running] = []

    async def start(agent: dict[str, Any], *, user_data: dict[str, Any] | None = None) -> Running:
        org, _ = await orgs.get_or_create_org(deps.db, "runtime")
        row = await events.inbound(deps.db, org["id"], {
            "status": "ringing", "to_number": "+15550003333", "agent_name": "Tester", "agent_config": agent,
            "record": True, "user_data": user_data or {}})
        call = LoopbackCall()
        session = CallSession(deps, row, call)
        task = asyncio.get_running_loop().create_task(session.run())
        call.answer_now()
        r = Running(deps, session, call, task)
        running.append(r)
        return r

    yield start
    for r in running:
        r.call.remote_hangup()
    for r in running:
        await asyncio.wait_for(r.task, 15)  # sessions finish their records before the pool closes
