"""Shared model pieces: strict base classes, bounded strings, paging."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from api import errors

from .descriptions import describe


def _find_nul(value: Any, path: str) -> str | None:
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for k, v in value.items():
            hit = _find_nul(k, path) or _find_nul(v, f"{path}.{k}" if path else str(k))
            if hit is not None:
                return hit
    if isinstance(value, list):
        for i, v in enumerate(value):
            hit = _find_nul(v, f"{path}.{i}" if path else str(i))
            if hit is not None:
                return hit
    return None


class _NoNul(BaseModel):
    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        hit = _find_nul(data, "")
        if hit is not None:
            # Raised as an API error (not a ValueError) so it names the exact field.
            raise errors.ValidationFailed.field(hit or "body", "Text must not contain NUL characters.")
        return data


class RequestModel(_NoNul):
    """Base of request bodies: unknown fields are refused, NaN/inf too, and no string may hold NUL."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, populate_by_name=True, json_schema_extra=describe)


class QueryModel(_NoNul):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False, json_schema_extra=describe)


class ResponseModel(BaseModel):
    model_config = ConfigDict(from_attributes=True, json_schema_extra=describe)


class Page(QueryModel):
    limit: int = Field(50, ge=1, le=1000, description="Page size (max 1000).")
    offset: int = Field(0, ge=0, le=10_000_000, description="Items to skip.")


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


Name100 = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_not_blank)]
ShortText = Annotated[str, Field(max_length=500)]
LongText = Annotated[str, Field(max_length=20_000)]
Url = Annotated[str, Field(max_length=2048, pattern=r"^https?://[^\s]+$")]


def as_utc(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class Message(ResponseModel):
    message: str
