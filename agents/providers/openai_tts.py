"""Text-to-speech with OpenAI's speech endpoint through the official `openai` SDK.

`POST {base_url}/audio/speech` with `response_format="pcm"` streams raw 24 kHz signed 16-bit little-endian
mono audio; it is read as it arrives (`with_streaming_response`, no buffering of the whole sentence) and
resampled to the call's rate by a per-synthesis `StreamResampler`. Failures are classified with the LLM
provider's `classify` (429/5xx/connection retryable, 401/400 not) and retried by `stream_with_retry` only
until the first chunk was produced. The SDK's own retries are off (`max_retries=0`): a voice turn cannot
sit through its exponential backoff.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Hashable
from typing import Any

import numpy as np

from media.frames import Pcm16Decoder
from media.resample import StreamResampler

from .base import ProviderError, SynthesisStream, TextToSpeech
from .openai_llm import classify
from .retry import DEFAULT_POLICY, RetryPolicy, is_transport_error, stream_with_retry, transport_error
from .tls import openai_http_client

PCM_RATE = 24000  # OpenAI's `pcm` format: 24 kHz s16le mono
DEFAULT_MODEL = "gpt-4o-mini-tts"
_CHUNK = None  # each piece as it arrives (a size would hold the first audio back until that many bytes came)


class OpenAITTS(TextToSpeech):
    def __init__(self, *, api_key: str, model: str = DEFAULT_MODEL, base_url: str | None = None,
                 instructions: str | None = None, timeout: float = 20.0, policy: RetryPolicy = DEFAULT_POLICY,
                 provider: str = "openai", client: Any | None = None) -> None:
        import openai

        self.model, self.instructions, self.policy, self.provider = model, instructions, policy, provider
        self.base_url = base_url
        self.client = client or openai.AsyncOpenAI(api_key=api_key, base_url=base_url, timeout=timeout,
                                                   max_retries=0, http_client=openai_http_client())

    def cache_key(self) -> Hashable:
        return (self.provider, self.base_url, self.model, self.instructions)

    def synthesize(self, text: str, voice: str, sample_rate: int, *, speed: float | None = None) -> SynthesisStream:
        return SynthesisStream(
            stream_with_retry(lambda: self._run(text, voice, sample_rate, speed), self.policy,
                              what=f"{self.provider} speech"), sample_rate)

    async def aclose(self) -> None:
        await self.client.close()

    async def _run(self, text: str, voice: str, sample_rate: int, speed: float | None) -> AsyncIterator[np.ndarray]:
        import openai

        text = " ".join(text.split())
        if not text:
            return
        kwargs: dict[str, Any] = {"model": self.model, "voice": voice, "input": text[:4096], "response_format": "pcm"}
        if speed is not None:
            kwargs["speed"] = min(4.0, max(0.25, float(speed)))
        if self.instructions:
            kwargs["instructions"] = self.instructions
        resampler = StreamResampler(PCM_RATE, sample_rate)
        produced = False
        pcm16 = Pcm16Decoder()
        try:
            async with self.client.audio.speech.with_streaming_response.create(**kwargs) as response:
                async for data in response.iter_bytes(_CHUNK):
                    pcm = pcm16.decode(data)
                    if not len(pcm):
                        continue
                    out = resampler.process(pcm)
                    if len(out):
                        produced = True
                        yield out
        except openai.OpenAIError as e:
            err = classify(e, produced=produced)
            err.provider = self.provider
            raise err from e
        except ProviderError:
            raise
        except Exception as e:
            if not is_transport_error(e):
                raise
            raise transport_error(e, provider=self.provider, produced=produced) from e
        if not produced:
            raise ProviderError("the speech endpoint returned no audio", retryable=True, reason="no_audio",
                                provider=self.provider)
        if not resampler.passthrough:
            tail = resampler.flush()
            if len(tail):
                yield tail
