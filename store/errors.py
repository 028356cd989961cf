"""Typed storage errors: database failures classified where they are detected."""

from __future__ import annotations

import re
from typing import Any

import asyncpg


class StoreError(Exception):
    """Base class; ``field`` names the API field the error is about, when known."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(StoreError):
    pass


class Conflict(StoreError):
    """The request conflicts with the current state (unique value taken, resource in use)."""


class InvalidData(StoreError):
    """The database refused a value (bad encoding, out of range)."""


_CONSTRAINT_FIELDS = {
    "numbers_number_key": ("number", "This number is already registered on this server."),
    "organizations_name_key": ("name", "An organization with this name already exists."),
    "provider_keys_one_default": ("is_default", "A default key for this provider type already exists."),
    "numbers_trunk_id_fkey": ("trunk_id", "The trunk is used by numbers."),
}


def translate(exc: asyncpg.PostgresError) -> StoreError:
    """Map an asyncpg error to a typed store error naming the field where possible."""
    constraint = getattr(exc, "constraint_name", None) or ""
    if isinstance(exc, asyncpg.UniqueViolationError):
        field, message = _CONSTRAINT_FIELDS.get(constraint, (_guess_field(exc), "This value is already taken."))
        return Conflict(message, field=field)
    if isinstance(exc, asyncpg.ForeignKeyViolationError):
        field, message = _CONSTRAINT_FIELDS.get(constraint, (_guess_field(exc), "The resource is in use."))
        return Conflict(message, field=field)
    if isinstance(exc, asyncpg.DataError | asyncpg.CheckViolationError | asyncpg.NotNullViolationError):
        return InvalidData(f"Invalid value: {exc.__class__.__name__}", field=_guess_field(exc))
    raise exc


def _guess_field(exc: asyncpg.PostgresError) -> str | None:
    detail = getattr(exc, "detail", None) or ""
    match = re.search(r"Key \((\w+)\)", detail)
    return match[1] if match else getattr(exc, "column_name", None)


class translating:
    """``async with translating(): ...`` turns asyncpg errors into typed store errors."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, typ: Any, exc: Any, tb: Any) -> None:  # never swallows (mypy: no "missing return")
        if isinstance(exc, asyncpg.PostgresError):
            raise translate(exc) from exc
