"""A cloud provider failing mid-call is never a silent line: the failure is recorded and the local
provider takes over (real SDKs against loopback servers speaking each provider's protocol, refusing the key)."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from agents.conversation import Conversation
from agents.engines import RetrievalEngine
from agents.providers.deepgram_stt import DeepgramSTT
from agents.providers.elevenlabs_tts import ElevenLabsTTS
from agents.providers.espeak_tts import EspeakTTS
from agents.providers.pocketsphinx_stt import PocketsphinxSTT
from agents.providers.sphinx_pool import DecoderPool
from media.endpointing import EndpointingConfig
from sipcore.loopback import RATE, LoopbackCall
from switchboard.calls.media_loop import LegIO, MediaLoop
from tests.providers.fake_deepgram import FakeDeepgram
from tests.providers.fake_elevenlabs import FakeElevenLabs
from tests.runtime.conftest import agent_config, silence, speech


class TurnLog(LegIO):
    """The conversation's view of a call on the media loop, keeping its transcript in memory."""

    def __init__(self, media: MediaLoop, key: str) -> None:
        super().__init__(media, key, RATE)
        self.turns: list[dict[str, Any]] = []
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.user_spoke = asyncio.Event()

    async def hangup(self, reason: str) -> None:
        return None

    async def transfer(self, target: str) -> None:
        return None

    async def send_dtmf(self, digits: str) -> None:
        return None

    async def record_event(self, kind: str, detail: dict[str, Any]) -> None:
        self.events.append((kind, detail))

    async def save_turn(self, turn: dict[str, Any]) -> None:
        self.turns.append(turn)
        if turn["role"] == "user":
            self.user_spoke.set()


async def test_failing_cloud_stt_and_tts_fall_back_to_the_local_voice_and_recogniser():
    deepgram, elevenlabs = await FakeDeepgram().start(), await FakeElevenLabs().start()
    media = MediaLoop(media_timeout=0)
    media.start()
    pool = DecoderPool(1)
    conversation = None
    try:
        call = LoopbackCall()
        call.answer_now()
        io = TurnLog(media, "c")
        agent = agent_config(begin_message="Hello there.", stt={"provider": "deepgram",
                             "phrases": ["what are your opening hours"]})
        conversation = Conversation(
            agent, {}, io, engine=RetrievalEngine(None, "I cannot answer that yet."), agent_name="Tester",
            stt=DeepgramSTT(api_key="revoked", base_url=deepgram.base_url),  # 401 on connect
            tts=ElevenLabsTTS(api_key="revoked", base_url=elevenlabs.base_url), voice="21m00Tcm4TlvDq8ikWAM",
            phrases=["what are your opening hours"],
            fallback_stt=PocketsphinxSTT(pool, interim_results=False), fallback_tts=(EspeakTTS(), "en-us"))
        media.add("c", call, recorder=None, on_events=lambda evs: [conversation.on_turn_event(e.event) for e in evs],
                  on_media_timeout=lambda: None, on_speech=conversation.on_speech,
                  endpointing=EndpointingConfig())
        conversation.start()
        call.say(silence(3.0))
        call.say(speech("what are your opening hours"))
        await asyncio.wait_for(io.user_spoke.wait(), 30)
        await asyncio.sleep(2.0)  # the answer
        system = [t["content"] for t in io.turns if t["role"] == "system"]
        assert any(s.startswith("text-to-speech provider error: auth") for s in system), io.turns
        assert any(s.startswith("speech-to-text provider error: auth") for s in system), io.turns
        spoken = [t["content"] for t in io.turns if t["role"] == "agent"]
        assert spoken[0] == "Hello there."  # the greeting was still spoken, by the local voice
        assert ("user", "what are your opening hours") in [(t["role"], t["content"]) for t in io.turns]
        assert spoken[-1] == "I cannot answer that yet."
        assert np.abs(call.heard_audio()).max() > 1000  # and heard
        assert deepgram.refused and elevenlabs.requests  # the cloud providers were really tried
        assert sorted(d["kind"] for k, d in io.events if k == "provider_fallback") == ["stt", "tts"], io.events
    finally:
        if conversation is not None:
            await conversation.aclose()
        await media.stop()
        pool.close()
        await deepgram.stop()
        await elevenlabs.stop()
