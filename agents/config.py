"""An agent's configuration as the runtime uses it, with its defaults: the one place they are written.

The API's request and response models derive from this (``api.models.agents``: its ``DEFAULTS`` are
``AgentConfig`` dumped, its aliases and partial updates stay there). Stored configurations are read with
``AgentConfig.load`` (missing keys take the defaults; unknown keys are ignored), so the session and the
conversation read typed attributes instead of restating defaults in ``.get(key, default)`` calls.

Defaults chosen: ``max_duration_seconds`` 3000 (50 minutes; the API always stored it, but the runtime used
to treat a missing value as "no limit"); the demo agent keeps its own explicit 600.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agents.voices import DEFAULT_VOICE_ID

DEFAULT_VOICE = DEFAULT_VOICE_ID  # the local flite voice (agents.voices)
DEFAULT_MAX_DURATION_SECONDS = 3000


class _Config(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ResponseEngineConfig(_Config):
    type: Literal["llm", "custom-llm", "retrieval"] = "retrieval"
    system_prompt: str | None = None
    llm_provider: str | None = None
    llm_model: str | None = None
    base_url: str | None = None
    temperature: float | None = None
    llm_websocket_url: str | None = None
    fallback_message: str | None = None


class SttConfig(_Config):
    provider: str = "local"
    model: str | None = None
    phrases: list[str] | None = None


class VoiceSettingsConfig(_Config):
    stability: float | None = None
    similarity_boost: float | None = None
    speed: float | None = None


class DtmfRuleConfig(_Config):
    digits: str
    action: Literal["hangup", "transfer", "say"]
    target: str | None = None
    text: str | None = None


class AgentConfig(_Config):
    """What an agent does on a call (everything but its name and enabled flag)."""

    description: str | None = None
    voice_id: str = DEFAULT_VOICE
    language: str = "en-US"
    response_engine: ResponseEngineConfig = Field(default_factory=ResponseEngineConfig)
    stt: SttConfig = Field(default_factory=SttConfig)
    begin_message: str | None = None
    first_speaker: Literal["agent", "user"] = "agent"
    interruptible: bool = True
    max_duration_seconds: int = DEFAULT_MAX_DURATION_SECONDS
    inactivity_timeout_seconds: float | None = None
    inactivity_action: Literal["hangup", "reminder"] = "hangup"
    recording_enabled: bool = True
    voice_settings: VoiceSettingsConfig | None = None
    knowledge_base_ids: list[str] = Field(default_factory=list)
    dtmf_rules: list[DtmfRuleConfig] = Field(default_factory=list)
    tools: list[dict[str, Any]] = Field(default_factory=list)  # shapes: api.models.agents.Tool
    webhook_url: str | None = None
    post_call_webhook_url: str | None = None
    post_call_webhook_method: str = "POST"
    post_call_webhook_headers: list[dict[str, str]] = Field(default_factory=list)
    call_status_webhook_url: str | None = None
    call_status_webhook_method: str = "POST"
    call_status_webhook_headers: list[dict[str, str]] = Field(default_factory=list)
    post_call_analysis: dict[str, Any] | None = None  # shapes: api.models.agents.PostCallAnalysis (agents.report)

    @classmethod
    def load(cls, stored: AgentConfig | dict[str, Any] | None) -> AgentConfig:
        """A stored configuration (JSON from the database or an inline agent) with defaults filled in;
        explicit nulls take the default too."""
        if isinstance(stored, AgentConfig):
            return stored
        values = {k: v for k, v in (stored or {}).items() if v is not None}
        return cls.model_validate(values)

    def stored(self) -> dict[str, Any]:
        """As JSON, the form kept in the database (nested settings without their unset keys)."""
        data = self.model_dump(mode="json")
        for key in ("response_engine", "stt", "voice_settings"):
            if isinstance(data.get(key), dict):
                data[key] = {k: v for k, v in data[key].items() if v is not None}
        return data
