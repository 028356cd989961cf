"""Call models."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, Field, field_validator

from sipcore.causes import CallStatus, DisconnectionReason, HangupCause  # noqa: E402 - the one vocabulary

from .agents import AgentCreate, HttpMethod, WebhookHeader
from .common import QueryModel, RequestModel, ResponseModel, Url, as_utc

Destination = Annotated[str, Field(min_length=1, max_length=2048)]
METADATA_MAX_BYTES = 16 * 1024
UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]


class CallCreate(RequestModel):
    to_number: Destination | Annotated[list[Destination], Field(min_length=1, max_length=1000)] = Field(
        description="E.164 number (loose formats accepted) or sip:/sips: URI; an array places one call each."
    )
    agent_id: UUID | None = None
    agent: AgentCreate | None = Field(None, description="An inline agent instead of agent_id.")
    number_id: UUID | None = Field(None, description="Caller ID: an active number of yours.")
    from_number: Annotated[str, Field(max_length=40)] | None = None
    trunk_id: UUID | None = Field(None, description="Required for E.164 unless the number has a trunk.")
    record: bool | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    user_data: dict[str, Any] = Field(default_factory=dict)
    max_duration_seconds: int | None = Field(None, ge=60, le=7200)
    post_call_webhook_url: Url | None = None
    post_call_webhook_method: HttpMethod | None = None
    post_call_webhook_headers: Annotated[list[WebhookHeader], Field(max_length=50)] | None = None
    call_status_webhook_url: Url | None = None
    call_status_webhook_method: HttpMethod | None = None
    call_status_webhook_headers: Annotated[list[WebhookHeader], Field(max_length=50)] | None = None

    @field_validator("metadata", "user_data")
    @classmethod
    def _small(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(json.dumps(value)) > METADATA_MAX_BYTES:
            raise ValueError("must be at most 16 KB as JSON")
        return value


class CallQuery(QueryModel):
    limit: int = Field(50, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=10_000_000)
    agent_id: UUID | None = None
    number_id: UUID | None = None
    trunk_id: UUID | None = None
    status: CallStatus | None = None
    direction: Literal["inbound", "outbound"] | None = None
    date_from: UtcDatetime | None = None
    date_to: UtcDatetime | None = None
    search: Annotated[str, Field(max_length=100)] | None = None


class ActiveCallQuery(QueryModel):
    limit: int = Field(50, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=10_000_000)


class TranscriptTurn(ResponseModel):
    role: Literal["agent", "user", "system", "tool"]
    content: str
    timestamp: datetime
    start_ms: int | None
    end_ms: int | None
    agent_name: str | None
    tool_call: dict[str, Any] | None
    interrupted: bool


class CallOut(ResponseModel):
    id: UUID
    call_id: UUID
    status: CallStatus
    direction: Literal["inbound", "outbound"]
    to_number: str
    from_number: str | None
    agent_id: UUID | None
    agent: str | None = Field(description="The agent's name.")
    trunk_id: UUID | None
    number_id: UUID | None
    record: bool
    duration_seconds: int | None
    duration_minutes: float | None
    cost: float | None
    started_at: datetime | None
    answered_at: datetime | None
    ended_at: datetime | None
    hangup_cause: str | None = Field(description="Q.850 cause name (FreeSWITCH spelling), one of: "
                                     + ", ".join(HangupCause) + " (a FreeSWITCH front end may report others).")
    disconnection_reason: str | None = Field(description="Why the call ended, machine-readable, one of: "
                                             + ", ".join(DisconnectionReason) + ".")
    sip_status: int | None = Field(None, description="The SIP status that ended or refused the call, if any.")
    error_message: str | None = Field(None, description="For calls that did not complete: the engine's own "
                                      "words (SIP status and reason phrase, or the local error).")
    sip_call_id: str | None
    recording_url: str | None
    recording_status: Literal["skipped_quota", "deleted_retention"] | None = Field(
        None, description="Why the call has no recording when policy decided: `skipped_quota` (the organization's "
                          "recording storage quota was full when the call was answered) or `deleted_retention` "
                          "(deleted after the retention period); null otherwise.")
    transcript: list[TranscriptTurn] | None = None
    metadata: dict[str, Any]
    user_data: dict[str, Any]
    max_duration_seconds: int | None
    metrics: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class CallEnd(RequestModel):
    reason: Literal[DisconnectionReason.API_HANGUP, DisconnectionReason.AGENT_HANGUP] = DisconnectionReason.API_HANGUP


class CallEventOut(ResponseModel):
    id: int = Field(description="Increases in the order the events happened.")
    kind: str = Field(description="status, dtmf_received, dtmf_sent, transfer, transfer_failed, tool_call, "
                      "provider_fallback.")
    status: CallStatus = Field(description="The call's status (for kind=status: the status it moved to).")
    detail: dict[str, Any]
    created_at: datetime


class DtmfRequest(RequestModel):
    digits: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[0-9*#A-Da-d]+$")]


class TransferRequest(RequestModel):
    target: Annotated[str, Field(min_length=1, max_length=2048, description="SIP URI or E.164 number")]


class Percentiles(ResponseModel):
    p50: float | None
    p90: float | None


class CallMetrics(ResponseModel):
    duration_seconds: float | None
    turns: int
    interruptions: int
    agent_handoffs: int
    total_tokens: int
    stt_latency_ms: Percentiles
    llm_latency_ms: Percentiles = Field(description="To the first token (or the retrieval answer).")
    tts_latency_ms: Percentiles = Field(description="Sentence handed to TTS → its first audio.")
    voice_to_voice_ms: Percentiles = Field(description="Caller stops speaking → agent audio starts.")
    retrieval_ms: Percentiles = Field(description="Knowledge-base lookups per turn.")
    per_turn: list[dict[str, Any]]
    packets_lost: int | None
    jitter_ms: float | None
