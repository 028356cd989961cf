"""STT / TTS / LLM providers behind the small interfaces of `agents.providers.base`."""

from .base import (
    LanguageModel,
    LLMEvent,
    LLMStats,
    LLMStream,
    ProviderError,
    SpeechStream,
    SpeechToText,
    SynthesisStream,
    TextDelta,
    TextToSpeech,
    ToolCall,
    Transcript,
    Usage,
)

__all__ = [
    "LLMEvent",
    "LLMStats",
    "LLMStream",
    "LanguageModel",
    "ProviderError",
    "SpeechStream",
    "SpeechToText",
    "SynthesisStream",
    "TextDelta",
    "TextToSpeech",
    "ToolCall",
    "Transcript",
    "Usage",
]
