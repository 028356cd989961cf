"""Agent models."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AliasChoices, Field, model_validator

from agents.config import AgentConfig

from .common import LongText, Name100, QueryModel, RequestModel, ResponseModel, ShortText, Url

HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
Language = Annotated[str, Field(pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}$", max_length=35)]


class ResponseEngine(RequestModel):
    type: Literal["llm", "custom-llm", "retrieval"] = "retrieval"
    system_prompt: LongText | None = None
    llm_provider: Annotated[str, Field(max_length=50)] | None = None
    llm_model: Annotated[str, Field(max_length=100)] | None = None
    base_url: Url | None = Field(None, description="Any OpenAI-compatible server.")
    temperature: float | None = Field(None, ge=0, le=1)
    llm_websocket_url: Annotated[str, Field(max_length=2048, pattern=r"^wss?://[^\s]+$")] | None = None
    fallback_message: ShortText | None = Field(None, description="Retrieval engine: said when nothing matches.")

    @model_validator(mode="after")
    def _custom_needs_url(self) -> ResponseEngine:
        if self.type == "custom-llm" and not self.llm_websocket_url:
            raise ValueError("llm_websocket_url is required when type is custom-llm")
        return self


class SttSettings(RequestModel):
    provider: Annotated[str, Field(max_length=50)] = "local"
    model: Annotated[str, Field(max_length=100)] | None = None
    phrases: Annotated[list[Annotated[str, Field(min_length=1, max_length=200)]], Field(max_length=500)] | None = Field(
        None, description="Expected caller phrases. The local recogniser (pocketsphinx) is reliable on these "
                          "and weak on open vocabulary; cloud recognisers take them as hints.")


class VoiceSettings(RequestModel):
    stability: float | None = Field(None, ge=0, le=1)
    similarity_boost: float | None = Field(None, ge=0, le=1)
    speed: float | None = Field(None, ge=0.5, le=2.0)


class DtmfRule(RequestModel):
    digits: Annotated[str, Field(pattern=r"^[0-9*#A-Da-d]{1,20}$")]
    action: Literal["transfer", "hangup", "say"]
    target: Annotated[str, Field(max_length=2048)] | None = None
    text: ShortText | None = None

    @model_validator(mode="after")
    def _needs(self) -> DtmfRule:
        if self.action == "transfer" and not self.target:
            raise ValueError("target is required for a transfer rule")
        if self.action == "say" and not self.text:
            raise ValueError("text is required for a say rule")
        return self


class BuiltinTool(RequestModel):
    type: Literal["end_call", "transfer_call", "send_dtmf", "knowledge_lookup"]
    description: ShortText | None = None
    target: Annotated[str, Field(max_length=2048)] | None = Field(None, description="transfer_call: default target.")


class HttpTool(RequestModel):
    type: Literal["function"]
    name: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}$")]
    description: ShortText
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    url: Url
    method: HttpMethod = "POST"


Tool = Annotated[BuiltinTool | HttpTool, Field(discriminator="type")]


class WebhookHeader(RequestModel):
    key: Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")]
    value: Annotated[str, Field(max_length=4096, pattern=r"^[^\r\n]*$")]


class AnalysisField(RequestModel):
    name: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
    type: Literal["string", "number", "integer", "boolean", "enum"] = "string"
    description: ShortText
    choices: Annotated[list[Annotated[str, Field(min_length=1, max_length=100)]], Field(max_length=50)] | None = None

    @model_validator(mode="after")
    def _enum_choices(self) -> AnalysisField:
        if self.type == "enum" and not self.choices:
            raise ValueError("choices are required for an enum field")
        return self


class PostCallAnalysis(RequestModel):
    """What the post-call report asks the organization's LLM for (agents/report.py)."""

    summary: bool = True
    sentiment: bool = True
    call_successful: bool = True
    custom_fields: Annotated[list[AnalysisField], Field(max_length=30)] = Field(default_factory=list)
    model: Annotated[str, Field(max_length=100)] | None = Field(None, description="Default: the agent's LLM model.")
    instructions: ShortText | None = Field(None, description="What counts as a successful call, context.")


class AgentFields(RequestModel):
    """Everything but the name; shared by create, update and inline agents."""

    description: ShortText | None = None
    voice_id: Annotated[str, Field(max_length=100)] | None = None
    language: Language | None = None
    response_engine: ResponseEngine | None = None
    stt: SttSettings | None = None
    begin_message: LongText | None = Field(None, validation_alias=AliasChoices("begin_message", "starting_message"))
    first_speaker: Literal["agent", "user"] | None = None
    interruptible: bool | None = None
    max_duration_seconds: int | None = Field(None, ge=60, le=7200)
    inactivity_timeout_seconds: int | None = Field(None, ge=10, le=300)
    inactivity_action: Literal["hangup", "reminder"] | None = None
    recording_enabled: bool | None = None
    voice_settings: VoiceSettings | None = None
    knowledge_base_ids: Annotated[list[UUID], Field(max_length=20)] | None = None
    dtmf_rules: Annotated[list[DtmfRule], Field(max_length=50)] | None = None
    tools: Annotated[list[Tool], Field(max_length=50)] | None = None
    webhook_url: Url | None = None
    post_call_webhook_url: Url | None = None
    post_call_webhook_method: HttpMethod | None = None
    post_call_webhook_headers: Annotated[list[WebhookHeader], Field(max_length=50)] | None = None
    call_status_webhook_url: Url | None = None
    call_status_webhook_method: HttpMethod | None = None
    call_status_webhook_headers: Annotated[list[WebhookHeader], Field(max_length=50)] | None = None
    post_call_analysis: PostCallAnalysis | None = None
    enabled: bool | None = None


# The defaults live in the agent runtime (agents.config.AgentConfig); the API shows and stores them.
# post_call_analysis is read by the post-call analyzer (agents/report.py) only, from the stored JSON.
DEFAULTS: dict[str, Any] = {**AgentConfig().stored(), "post_call_analysis": None, "enabled": True}


class AgentCreate(AgentFields):
    name: Name100 = Field(validation_alias=AliasChoices("name", "agent_name"), description="Required; `agent_name` is accepted too.")


class AgentUpdate(AgentFields):
    name: Name100 | None = Field(None, validation_alias=AliasChoices("name", "agent_name"))


class AgentQuery(QueryModel):
    limit: int = Field(50, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=10_000_000)
    enabled: bool | None = None


class ResponseEngineOut(ResponseModel):
    type: str
    system_prompt: str | None = None
    llm_provider: str | None = None
    llm_model: str | None = None
    base_url: str | None = None
    temperature: float | None = None
    llm_websocket_url: str | None = None
    fallback_message: str | None = None


class AgentOut(ResponseModel):
    id: UUID
    agent_id: UUID
    name: str
    description: str | None
    voice_id: str
    language: str
    response_engine: ResponseEngineOut
    stt: dict[str, Any]
    begin_message: str | None
    first_speaker: str
    interruptible: bool
    max_duration_seconds: int
    inactivity_timeout_seconds: int | None
    inactivity_action: str
    recording_enabled: bool
    voice_settings: dict[str, Any] | None
    knowledge_base_ids: list[UUID]
    dtmf_rules: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    webhook_url: str | None
    post_call_webhook_url: str | None
    post_call_webhook_method: str
    post_call_webhook_headers: list[dict[str, str]]
    call_status_webhook_url: str | None
    call_status_webhook_method: str
    call_status_webhook_headers: list[dict[str, str]]
    post_call_analysis: dict[str, Any] | None = None
    enabled: bool
    created_at: datetime
    updated_at: datetime
