"""The default local voice on the real runtime: an agent with no voice_id speaks with flite (kal16), and a
worker whose flite binary is missing still speaks (espeak-ng), with a WARNING instead of a failed call."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from agents.providers.flite_tts import FliteTTS
from agents.providers.local_tts import LocalTTS
from tests.runtime.conftest import agent_config

GREETING = "Hello, thank you for calling."


def energy(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) if len(pcm) else 0.0


async def greet(start_call) -> tuple[dict, np.ndarray, list[dict]]:
    agent = agent_config(begin_message=GREETING)
    assert agent["voice_id"] == "flite-kal16"
    call = await start_call(agent)
    greeting = (await call.wait_turns(1))[0]
    call.call.remote_hangup()
    await call.ended()
    return greeting, call.call.heard_audio(), await call.turns()


async def test_the_default_voice_is_flite(start_call, deps) -> None:
    assert isinstance(deps.tts, LocalTTS)
    greeting, heard, turns = await greet(start_call)
    assert (greeting["role"], greeting["content"], greeting["interrupted"]) == ("agent", GREETING, False)
    assert energy(heard) > 300 and not deps.tts.flite_missing
    assert [t for t in turns if t["role"] == "system"] == []


async def test_a_missing_flite_speaks_with_espeak(start_call, deps, caplog: pytest.LogCaptureFixture) -> None:
    deps.tts = LocalTTS(flite=FliteTTS(executable="/nonexistent/flite"))
    with caplog.at_level(logging.WARNING):
        greeting, heard, turns = await greet(start_call)
    assert (greeting["role"], greeting["content"], greeting["interrupted"]) == ("agent", GREETING, False)
    assert energy(heard) > 300  # the caller heard the greeting, in espeak-ng's voice
    assert deps.tts.flite_missing
    assert [t for t in turns if t["role"] == "system"] == []  # no provider error on the call
    assert any("flite cannot be started" in r.getMessage() and "espeak-ng" in r.getMessage()
               for r in caplog.records if r.levelno == logging.WARNING)
