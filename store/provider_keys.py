"""Bring-your-own provider keys (encrypted at rest; only a mask is ever returned)."""

from __future__ import annotations

from .crud import Table

provider_keys = Table(
    "provider_keys",
    frozenset({"provider_type", "provider_name", "key_enc", "key_masked", "is_default"}),
    touch_updated_at=False,
)
