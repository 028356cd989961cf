"""Provider keys (bring your own key): encrypted at rest, returned masked."""

from __future__ import annotations

from typing import Any

from api import errors
from api.keys import POOL, SECRETS
from api.models.common import Page
from api.models.keys import ProviderKeyCreate, ProviderKeyOut
from api.routing import Ctx, Result
from store.crypto import mask_secret
from store.provider_keys import provider_keys

from . import registry


def present(record: dict[str, Any]) -> dict[str, Any]:
    return ProviderKeyOut.model_validate({**record, "api_key": record["key_masked"]}).model_dump(mode="json")


@registry.route("GET", "/provider-keys", summary="List provider keys (masked)", tag="Provider keys", query=Page,
                response=ProviderKeyOut, many=True)
async def list_provider_keys(ctx: Ctx) -> Result:
    items, total = await provider_keys.list(ctx.app[POOL], ctx.org_id, None, ctx.query.limit, ctx.query.offset)
    return Result([present(r) for r in items], total=total, limit=ctx.query.limit, offset=ctx.query.offset)


@registry.route("POST", "/provider-keys", summary="Add a provider key", tag="Provider keys", body=ProviderKeyCreate,
                response=ProviderKeyOut, status=201, errors=(409,))
async def create_provider_key(ctx: Ctx) -> Result:
    body: ProviderKeyCreate = ctx.body
    record = await provider_keys.insert(ctx.app[POOL], ctx.org_id, {
        "provider_type": body.provider_type, "provider_name": body.provider_name,
        "key_enc": ctx.app[SECRETS].encrypt(body.api_key), "key_masked": mask_secret(body.api_key),
        "is_default": body.is_default,
    })
    return Result(present(record), status=201)


@registry.route("DELETE", "/provider-keys/{key_id}", summary="Delete a provider key", tag="Provider keys",
                status=204, errors=(404,))
async def delete_provider_key(ctx: Ctx) -> None:
    if not await provider_keys.delete(ctx.app[POOL], ctx.org_id, ctx.ids["key_id"]):
        raise errors.NotFound("No provider key with that id.")
