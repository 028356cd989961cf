"""API keys: the plain key is shown once, at creation or regeneration."""

from __future__ import annotations

from api import errors
from api.keys import POOL
from api.models.common import Page
from api.models.keys import ApiKeyCreate, ApiKeyCreated, ApiKeyOut
from api.routing import Ctx, Result
from store import orgs

from . import registry


def _out(record: dict, plain: str | None = None) -> dict:
    if plain is not None:
        return ApiKeyCreated.model_validate({**record, "key": plain}).model_dump(mode="json")
    return ApiKeyOut.model_validate(record).model_dump(mode="json")


@registry.route("GET", "/api-keys", summary="List API keys", tag="API keys", query=Page, response=ApiKeyOut, many=True)
async def list_keys(ctx: Ctx) -> Result:
    items, total = await orgs.list_api_keys(ctx.app[POOL], ctx.org_id, ctx.query.limit, ctx.query.offset)
    return Result([_out(r) for r in items], total=total, limit=ctx.query.limit, offset=ctx.query.offset)


@registry.route("POST", "/api-keys", summary="Create an API key", tag="API keys", body=ApiKeyCreate,
                response=ApiKeyCreated, status=201)
async def create_key(ctx: Ctx) -> Result:
    record, plain = await orgs.create_api_key(ctx.app[POOL], ctx.org_id, ctx.body.name)
    return Result(_out(record, plain), status=201)


@registry.route("DELETE", "/api-keys/{key_id}", summary="Delete an API key", tag="API keys", status=204,
                errors=(404, 409))
async def delete_key(ctx: Ctx) -> None:
    async with ctx.app[POOL].acquire() as conn, conn.transaction():
        outcome = await orgs.delete_api_key(conn, ctx.org_id, ctx.ids["key_id"])
    if outcome == "missing":
        raise errors.NotFound("No API key with that id.")
    if outcome == "last":
        raise errors.Conflict("Cannot delete the organization's last API key; create another one first.")


@registry.route("POST", "/api-keys/{key_id}/regenerate", summary="Regenerate an API key", tag="API keys",
                response=ApiKeyCreated, errors=(404,))
async def regenerate_key(ctx: Ctx) -> Result:
    result = await orgs.regenerate_api_key(ctx.app[POOL], ctx.org_id, ctx.ids["key_id"])
    if result is None:
        raise errors.NotFound("No API key with that id.")
    return Result(_out(*result))
