"""Text-to-speech with ElevenLabs' streaming endpoint through the official `elevenlabs` SDK.

`text_to_speech.stream(voice_id, text=, model_id=, output_format="pcm_<rate>", voice_settings=)` is
`POST {base}/v1/text-to-speech/{voice_id}/stream?output_format=pcm_16000` with the `xi-api-key` header;
the answer is raw signed 16-bit little-endian mono PCM, streamed. The call's rate is asked for directly
when ElevenLabs offers it as PCM (8, 16, 22.05, 24, 44.1, 48 kHz), else 16 kHz; a per-synthesis
`StreamResampler` converts whatever differs. The agent's `voice_settings` (stability, similarity_boost, speed)
go with every request; `synthesize(speed=)` overrides the speed (ElevenLabs accepts 0.7–1.2).

Errors: the SDK's `ApiError.status_code` (429/5xx retryable; 401/400/422 not), httpx transport failures
(retryable until the first chunk). The streaming endpoint is not retried by the SDK itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Hashable, Mapping
from typing import Any

import numpy as np

from media.frames import Pcm16Decoder
from media.resample import StreamResampler

from .base import ProviderError, SynthesisStream, TextToSpeech
from .retry import (
    DEFAULT_POLICY,
    RetryPolicy,
    is_transport_error,
    status_error,
    stream_with_retry,
    transport_error,
)
from .tls import async_client

DEFAULT_MODEL = "eleven_flash_v2_5"  # the low-latency model (~75 ms)
PCM_RATES = (8000, 16000, 22050, 24000, 44100, 48000)
_SPEED_RANGE = (0.7, 1.2)
# the SDK reads the body with httpx's iter_bytes(chunk_size): a size holds each piece back until that many
# bytes came (3,200: the first 100 ms of 8 kHz audio waited for the next network chunk, +26 ms to first audio
# in bench-v2v); None hands on each piece as it arrives
_CHUNK = None


def output_rate(sample_rate: int) -> int:
    return sample_rate if sample_rate in PCM_RATES else 16000


def _error_message(body: Any) -> str:
    """ElevenLabs errors: {"detail": {"status": ..., "message": ...}} or {"detail": "..."} or validation lists."""
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(detail, dict):
        return str(detail.get("message") or detail.get("status") or detail)
    return str(detail)[:300]


class ElevenLabsTTS(TextToSpeech):
    def __init__(self, *, api_key: str, model_id: str = DEFAULT_MODEL, base_url: str | None = None,
                 voice_settings: Mapping[str, Any] | None = None, language_code: str | None = None,
                 timeout: float = 20.0, policy: RetryPolicy = DEFAULT_POLICY, client: Any | None = None) -> None:
        from elevenlabs.client import AsyncElevenLabs

        self.model_id, self.policy, self.language_code = model_id, policy, language_code
        self.base_url = base_url
        self.voice_settings = {k: v for k, v in (voice_settings or {}).items()
                               if k in ("stability", "similarity_boost", "speed") and v is not None}
        self.client = client or AsyncElevenLabs(api_key=api_key, base_url=base_url, timeout=timeout,
                                                     httpx_client=async_client(timeout=timeout, follow_redirects=True))

    def cache_key(self) -> Hashable:
        return ("elevenlabs", self.base_url, self.model_id, self.language_code,
                tuple(sorted(self.voice_settings.items())))

    def synthesize(self, text: str, voice: str, sample_rate: int, *, speed: float | None = None) -> SynthesisStream:
        return SynthesisStream(
            stream_with_retry(lambda: self._run(text, voice, sample_rate, speed), self.policy,
                              what="elevenlabs speech"), sample_rate)

    async def aclose(self) -> None:
        wrapper = getattr(self.client, "_client_wrapper", None)
        httpx_client = getattr(getattr(wrapper, "httpx_client", None), "httpx_client", None)
        if httpx_client is not None:
            await httpx_client.aclose()

    def _settings(self, speed: float | None) -> Any:
        from elevenlabs import VoiceSettings

        values = dict(self.voice_settings)
        if speed is not None:
            values["speed"] = speed
        if "speed" in values:
            values["speed"] = min(_SPEED_RANGE[1], max(_SPEED_RANGE[0], float(values["speed"])))
        return VoiceSettings(**values) if values else None

    async def _run(self, text: str, voice: str, sample_rate: int, speed: float | None) -> AsyncIterator[np.ndarray]:
        from elevenlabs.core.api_error import ApiError

        text = " ".join(text.split())
        if not text:
            return
        rate = output_rate(sample_rate)
        kwargs: dict[str, Any] = {"text": text, "model_id": self.model_id, "output_format": f"pcm_{rate}",
                                  "request_options": {"chunk_size": _CHUNK, "max_retries": 0}}
        settings = self._settings(speed)
        if settings is not None:
            kwargs["voice_settings"] = settings
        if self.language_code:
            kwargs["language_code"] = self.language_code
        resampler = StreamResampler(rate, sample_rate)
        produced = False
        pcm16 = Pcm16Decoder()
        try:
            async for data in self.client.text_to_speech.stream(voice, **kwargs):
                pcm = pcm16.decode(data)
                if not len(pcm):
                    continue
                out = resampler.process(pcm)
                if len(out):
                    produced = True
                    yield out
        except ApiError as e:
            raise status_error(e.status_code or 0, _error_message(e.body), provider="elevenlabs",
                               produced=produced) from e
        except ProviderError:
            raise
        except Exception as e:
            if not is_transport_error(e):
                raise
            raise transport_error(e, provider="elevenlabs", produced=produced) from e
        if not produced:
            raise ProviderError("ElevenLabs returned no audio", retryable=True, reason="no_audio",
                                provider="elevenlabs")
        if not resampler.passthrough:
            tail = resampler.flush()
            if len(tail):
                yield tail
