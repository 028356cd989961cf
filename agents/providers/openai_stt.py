"""Speech-to-text of whole utterances with OpenAI's transcription endpoint (and Groq's compatible one).

The conversation hands the recogniser one finished utterance at a time (push, then `flush()`), which is
exactly the shape of `POST {base_url}/audio/transcriptions`: each flushed utterance becomes a 16 kHz mono
16-bit WAV sent as multipart through `client.audio.transcriptions.create(file=, model=, ...)`, and its
`text` is the utterance's final `Transcript`. Groq speaks the same protocol at
`https://api.groq.com/openai/v1` (models `whisper-large-v3`, `whisper-large-v3-turbo`), so the same class
serves both with another `base_url`, key and model.

Utterances are transcribed one at a time, in order (the conversation pairs finals with utterances in
order). A retryable failure (429, 5xx, connection) is retried within the policy's budget — the request is
idempotent and nothing was produced yet. The agent's expected phrases go in `prompt` as vocabulary hints.
There are no interim results.
"""

from __future__ import annotations

import asyncio
import functools
import io
import time
import wave
from collections.abc import Sequence
from typing import Any

import numpy as np

from .base import FLUSH, ProviderError, QueuedSpeechStream, SpeechToText, Transcript
from .openai_llm import classify
from .retry import DEFAULT_POLICY, RetryPolicy, call_with_retry, is_transport_error, transport_error
from .tls import openai_http_client

SAMPLE_RATE = 16000
DEFAULT_MODEL = "gpt-4o-mini-transcribe"
GROQ_BASE_URL = "https://api.groq.com/openai/v1"
GROQ_MODEL = "whisper-large-v3"
_MIN_SAMPLES = SAMPLE_RATE // 10  # the endpoint refuses audio shorter than 0.1 s
_MAX_SAMPLES = 120 * SAMPLE_RATE  # ~3.8 MB of WAV, well under the 25 MB upload limit
_PROMPT_CHARS = 800  # Whisper reads only the last ~224 tokens of a prompt


def to_wav(pcm16k: np.ndarray) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(pcm16k.astype("<i2").tobytes())
    return buf.getvalue()


def language_code(language: str | None) -> str | None:
    """BCP-47 (`en-US`) → the ISO-639-1 code the endpoint takes (`en`)."""
    if not language or language == "multilingual":
        return None
    return language.split("-")[0].lower()


class OpenAISTT(SpeechToText):
    def __init__(self, *, api_key: str, model: str = DEFAULT_MODEL, base_url: str | None = None,
                 language: str | None = None, provider: str = "openai", timeout: float = 15.0,
                 policy: RetryPolicy = DEFAULT_POLICY, client: Any | None = None) -> None:
        import openai

        self.model, self.language, self.provider, self.policy = model, language_code(language), provider, policy
        self.client = client or openai.AsyncOpenAI(api_key=api_key, base_url=base_url, timeout=timeout,
                                                   max_retries=0, http_client=openai_http_client())

    def stream(self, *, phrases: Sequence[str] | None = None) -> OpenAISpeechStream:
        return OpenAISpeechStream(self, list(phrases or ()))

    async def aclose(self) -> None:
        await self.client.close()

    async def transcribe(self, pcm16k: np.ndarray, prompt: str | None = None) -> str:
        """One utterance → its text (one request, no retry)."""
        import openai

        kwargs: dict[str, Any] = {"model": self.model, "file": ("utterance.wav", to_wav(pcm16k), "audio/wav"),
                                  "response_format": "json"}
        if self.language:
            kwargs["language"] = self.language
        if prompt:
            kwargs["prompt"] = prompt
        try:
            result = await self.client.audio.transcriptions.create(**kwargs)
        except openai.OpenAIError as e:
            err = classify(e)
            err.provider = self.provider
            raise err from e
        except Exception as e:
            if not is_transport_error(e):
                raise
            raise transport_error(e, provider=self.provider) from e
        text = getattr(result, "text", result)
        return (text if isinstance(text, str) else "").strip()




class OpenAISpeechStream(QueuedSpeechStream):
    def __init__(self, stt: OpenAISTT, phrases: list[str]) -> None:
        super().__init__()
        self._stt = stt
        prompt = ", ".join(phrases)
        self._prompt = prompt[:_PROMPT_CHARS] if prompt else None
        self._samples = 0
        self._start(f"stt-{stt.provider}")


    async def _main(self) -> None:
        utt: list[np.ndarray] = []
        utt_start = 0
        try:
            while True:
                op = await self._next_op()
                if isinstance(op, np.ndarray):
                    if not utt:
                        utt_start = self._samples
                    utt.append(op)
                    self._samples += len(op)
                elif op == FLUSH:
                    if not utt:
                        continue  # like the local recogniser: no audio, no transcript
                    audio = np.concatenate(utt)[-_MAX_SAMPLES:]
                    utt = []
                    t0 = time.perf_counter()
                    text = ""
                    if len(audio) >= _MIN_SAMPLES:
                        text = await call_with_retry(functools.partial(self._stt.transcribe, audio, self._prompt),
                                                     self._stt.policy, what=f"{self._stt.provider} transcription")
                    self._events.put_nowait(Transcript(
                        text, True, utt_start * 1000 // SAMPLE_RATE, self._samples * 1000 // SAMPLE_RATE,
                        (time.perf_counter() - t0) * 1000.0))
                else:
                    break
        except asyncio.CancelledError:
            raise
        except ProviderError as e:
            self._events.put_nowait(e)
        except Exception as e:
            self._events.put_nowait(ProviderError(f"{self._stt.provider} transcription failed: {e}",
                                                  retryable=False, reason="error", provider=self._stt.provider))
        finally:
            self._events.put_nowait(None)
