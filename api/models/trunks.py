"""Trunk and number models."""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, Field, field_validator

from trunks.phone import InvalidNumber, normalize_e164

from .common import Name100, QueryModel, RequestModel, ResponseModel

Host = Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9.\-]+$|^\[[0-9A-Fa-f:.]+\]$")]
SipUser = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9\-_.!~*'()&=+$,;?/%]+$")]
Codec = Literal["PCMU", "PCMA", "G722"]


def _cidr(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError as exc:
        raise ValueError(f"{value!r} is not an IP network (e.g. 203.0.113.0/24)") from exc


def _e164(value: str) -> str:
    try:
        return normalize_e164(value)
    except InvalidNumber as exc:
        raise ValueError(str(exc)) from exc


Cidr = Annotated[str, Field(max_length=64), AfterValidator(_cidr)]
E164 = Annotated[str, Field(max_length=40, description="E.164, loose formats accepted"), AfterValidator(_e164)]


class TrunkFields(RequestModel):
    port: int | None = Field(None, ge=1, le=65535)
    transport: Literal["udp", "tcp", "tls"] | None = None
    username: SipUser | None = None
    password: Annotated[str, Field(min_length=1, max_length=256)] | None = Field(None, description="Write-only.")
    auth_username: SipUser | None = None
    realm: Annotated[str, Field(max_length=253)] | None = None
    # "register" would shadow BaseModel's inherited ABCMeta.register: keep it as an alias only.
    register_: bool | None = Field(None, alias="register")
    register_expires: int | None = Field(None, ge=60, le=86400)
    outbound_proxy: Annotated[str, Field(max_length=300, pattern=r"^(sips?:)?[A-Za-z0-9.\-\[\]:]+(;[^\s]*)?$")] | None = None
    from_domain: Host | None = None
    number_format: Literal["e164", "no_plus", "national"] | None = None
    dial_prefix: Annotated[str, Field(max_length=10, pattern=r"^[0-9*#+]*$")] | None = None
    max_concurrent_calls: int | None = Field(None, ge=1, le=100_000)
    calls_per_second: float | None = Field(None, gt=0, le=1000)
    inbound_cidrs: Annotated[list[Cidr], Field(max_length=100)] | None = None
    codecs: Annotated[list[Codec], Field(min_length=1, max_length=3)] | None = None
    rate_per_minute: float | None = Field(None, ge=0, le=1000)
    enabled: bool | None = None

    @field_validator("codecs")
    @classmethod
    def _unique(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and len(set(v)) != len(v):
            raise ValueError("codecs must not repeat")
        return v


class TrunkCreate(TrunkFields):
    name: Name100
    host: Host


class TrunkUpdate(TrunkFields):
    name: Name100 | None = None
    host: Host | None = None


class TrunkQuery(QueryModel):
    limit: int = Field(50, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=10_000_000)
    enabled: bool | None = None


class TrunkOut(ResponseModel):
    id: UUID
    trunk_id: UUID
    name: str
    host: str
    port: int
    transport: str
    username: str | None
    has_password: bool
    auth_username: str | None
    realm: str | None
    register_: bool = Field(alias="register")
    register_expires: int
    outbound_proxy: str | None
    from_domain: str | None
    number_format: str
    dial_prefix: str
    max_concurrent_calls: int | None
    calls_per_second: float | None
    inbound_cidrs: list[str]
    codecs: list[str]
    rate_per_minute: float | None
    enabled: bool
    registration_state: str
    created_at: datetime
    updated_at: datetime


class TrunkStatus(ResponseModel):
    trunk_id: UUID
    register_: bool = Field(alias="register")
    registration_state: Literal["unregistered", "registering", "registered", "failed"]
    last_error: str | None
    expires_at: datetime | None
    active_calls: int
    max_concurrent_calls: int | None


class NumberCreate(RequestModel):
    number: E164
    trunk_id: UUID
    agent_id: UUID | None = None
    name: Annotated[str, Field(max_length=100)] = ""
    status: Literal["active", "inactive"] = "active"


class NumberUpdate(RequestModel):
    trunk_id: UUID | None = None
    agent_id: UUID | None = None
    name: Annotated[str, Field(max_length=100)] | None = None
    status: Literal["active", "inactive"] | None = None


class NumberQuery(QueryModel):
    limit: int = Field(50, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=10_000_000)
    trunk_id: UUID | None = None
    agent_id: UUID | None = None
    status: Literal["active", "inactive"] | None = None


class NumberOut(ResponseModel):
    id: UUID
    number_id: UUID
    number: str
    trunk_id: UUID
    agent_id: UUID | None
    name: str
    status: str
    created_at: datetime
    updated_at: datetime
