"""Webhook settings, signing secret, deliveries and their attempts; post-call reports; live sockets."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import Field

from .common import QueryModel, RequestModel, ResponseModel, Url

WebhookEvent = Literal["call_status", "call_started", "call_completed", "call_failed", "call_analyzed"]
DeliveryStatus = Literal["pending", "delivered", "failed"]


class WebhookSettingsUpdate(RequestModel):
    webhook_url: Url | None = Field(None, description="The organization's default webhook URL (the last in the "
                                    "precedence call > task > agent > organization); null removes it.")
    webhook_events: Annotated[list[WebhookEvent], Field(max_length=5)] | None = Field(
        None, description="Events the default URL receives; null: all of them.")


class WebhookSettingsOut(ResponseModel):
    webhook_url: str | None
    webhook_events: list[str] | None
    secret_hint: str = Field(description="The end of the signing secret (the whole secret is shown only by "
                                         "POST /webhook-secret/rotate).")
    secret_rotated_at: datetime | None
    signature_header: str = "X-Switchboard-Signature"
    timestamp_header: str = "X-Switchboard-Timestamp"


class WebhookSecretOut(ResponseModel):
    webhook_secret: str = Field(description="Shown only in this response: store it now.")
    rotated_at: datetime


class DeliveryQuery(QueryModel):
    limit: int = Field(50, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=10_000_000)
    call_id: UUID | None = None
    event: WebhookEvent | None = None
    status: DeliveryStatus | None = None


class AttemptOut(ResponseModel):
    attempt: int
    worker: str
    started_at: datetime
    duration_ms: float
    status_code: int | None
    error: str | None
    response: str | None


class DeliveryOut(ResponseModel):
    id: UUID
    delivery_id: UUID
    event: str
    event_id: str
    call_id: UUID | None
    url: str
    method: str
    source: str = Field(description="Which setting chose the URL: call, task, agent or organization.")
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    event_at: datetime
    delivered_at: datetime | None
    created_at: datetime
    payload: dict[str, Any] = Field(description="The JSON body sent.")
    attempt_log: list[AttemptOut] | None = None


class ReportOut(ResponseModel):
    call_id: UUID
    status: Literal["pending", "done"]
    report: dict[str, Any] | None


class LiveOut(ResponseModel):
    call_id: UUID
    websocket_url: str
    session_token: str
    expires_at: datetime
    connection_info: dict[str, Any]
