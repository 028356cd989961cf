"""The pipeline's own added latency: caller's end of speech detected → first agent audio handed to the
engine, with providers that answer instantly (STT, response engine and TTS take ~0 ms), on the real media
loop (20 ms tick, Silero VAD, endpointing) and conversation runtime, in real time.

Reported per turn: detect→audio (the pipeline's added latency) and the caller's side: the wall time the
last voiced sample of the utterance reached the engine → first agent audio, minus the configured
end-of-speech silence (target ≤ 30 ms). The latter also holds the VAD's own granularity (32 ms windows,
read on a 20 ms tick) and the model's lag in noticing the end of speech.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import numpy as np

from agents.conversation import Conversation
from agents.engines import RetrievalEngine
from agents.providers.base import SpeechStream, SpeechToText, SynthesisStream, TextToSpeech, Transcript
from media.endpointing import EndpointingConfig, TurnEventKind
from media.tick import StreamEvent
from sipcore.loopback import RATE, LoopbackCall
from switchboard.calls.media_loop import LegIO, MediaLoop


class InstantStream(SpeechStream):
    def __init__(self) -> None:
        self._q: asyncio.Queue[Transcript] = asyncio.Queue()

    def push_audio(self, pcm16k: np.ndarray) -> None:
        return None

    def flush(self) -> None:
        self._q.put_nowait(Transcript("question", True, 0, 0, 0.0))

    def end_input(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    async def _iter(self) -> AsyncIterator[Transcript]:
        while True:
            yield await self._q.get()

    def __aiter__(self) -> AsyncIterator[Transcript]:
        return self._iter()


class InstantSTT(SpeechToText):
    def stream(self, *, phrases: Sequence[str] | None = None) -> SpeechStream:
        return InstantStream()


class InstantTTS(TextToSpeech):
    def __init__(self) -> None:
        t = np.arange(int(0.4 * RATE)) / RATE
        self.audio = (6000 * np.sin(2 * np.pi * 600 * t)).astype(np.int16)

    def synthesize(self, text: str, voice: str, sample_rate: int, *, speed: float | None = None) -> SynthesisStream:
        async def chunks() -> AsyncIterator[np.ndarray]:
            yield self.audio

        return SynthesisStream(chunks(), sample_rate)


class LoopIO(LegIO):
    """The conversation's view of the benchmark's call: the media loop's leg, and no call control."""

    async def hangup(self, reason: str) -> None:
        return None

    async def transfer(self, target: str) -> None:
        return None

    async def send_dtmf(self, digits: str) -> None:
        return None

    async def record_event(self, kind: str, detail: dict[str, Any]) -> None:
        return None

    async def save_turn(self, turn: dict[str, Any]) -> None:
        return None


async def measure(track: np.ndarray, turns: int, stop_ms: float) -> dict[str, list[float]]:
    media = MediaLoop(media_timeout=0)
    media.start()
    call = LoopbackCall()
    call.answer_now()
    io = LoopIO(media, "bench", RATE)
    engine = RetrievalEngine(None, "Fine.")
    conv = Conversation({"first_speaker": "user", "interruptible": False}, {}, io, stt=InstantSTT(),
                        tts=InstantTTS(), engine=engine, voice="x", agent_name="bench")
    detect: list[float] = []
    endpointed: list[float] = []  # the endpointer's own speech end (the stream's audio clock)
    first_audio: list[float] = []
    gap = np.zeros(int(1.6 * RATE), np.int16)  # room for the end of speech and the reply
    voiced_end = int(np.flatnonzero(np.abs(track) > 1000)[-1]) + 1  # last voiced sample of the utterance

    def on_events(events: list[StreamEvent]) -> None:
        for ev in events:
            if ev.event.kind is TurnEventKind.USER_STOPPED_SPEAKING:
                detect.append(time.monotonic())
                endpointed.append(ev.event.speech_end or time.monotonic())
            conv.on_turn_event(ev.event)

    def on_write(pcm: np.ndarray) -> None:
        if len(first_audio) < len(detect) and np.abs(pcm).max() > 1000:
            first_audio.append(time.monotonic())

    call.on_write = on_write
    media.add("bench", call, recorder=None, on_events=on_events, on_media_timeout=lambda: None,
              on_speech=conv.on_speech, endpointing=EndpointingConfig(stop_ms=stop_ms, interruptible=False))
    conv.start()
    for _ in range(turns):
        call.say(track)
        call.say(gap)
    await asyncio.sleep(turns * (len(track) + len(gap)) / RATE + 1.0)
    await conv.aclose()
    await media.stop()
    n = min(len(detect), len(first_audio))
    assert call.rx_started_at is not None
    speech_end = [call.rx_started_at + (i * (len(track) + len(gap)) + voiced_end) / RATE for i in range(n)]
    return {
        "added_ms": [(first_audio[i] - detect[i]) * 1000 for i in range(n)],
        "beyond_endpointed_ms": [(first_audio[i] - endpointed[i]) * 1000 - stop_ms for i in range(n)],
        "beyond_voiced_end_ms": [(first_audio[i] - speech_end[i]) * 1000 - stop_ms for i in range(n)],
    }
