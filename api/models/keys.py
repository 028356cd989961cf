"""API-key and provider-key models."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field

from .common import RequestModel, ResponseModel


class ApiKeyCreate(RequestModel):
    name: Annotated[str, Field(max_length=100)] = ""


class ApiKeyOut(ResponseModel):
    id: UUID
    name: str
    key_prefix: str
    created_at: datetime
    last_used_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The plain key. Shown once: store it now.")


class ProviderKeyCreate(RequestModel):
    provider_type: Literal["stt", "llm", "tts"]
    provider_name: Annotated[str, Field(min_length=1, max_length=50, pattern=r"^[a-z0-9][a-z0-9_\-]*$")]
    api_key: Annotated[str, Field(min_length=1, max_length=4096, pattern=r"^[^\s]+$")]
    is_default: bool = False


class ProviderKeyOut(ResponseModel):
    id: UUID
    provider_type: str
    provider_name: str
    api_key: str = Field(description="Masked: only the last four characters are shown.")
    is_default: bool
    created_at: datetime
