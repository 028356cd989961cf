"""Phone numbers: unique across the server; each on one of the organization's trunks."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from api import errors
from api.keys import POOL
from api.models.trunks import NumberCreate, NumberOut, NumberQuery, NumberUpdate
from api.routing import Ctx, Result
from store import agents as agent_store
from store import numbers as number_store
from store import trunks as trunk_store
from store.types import Where

from . import registry


def present(record: dict[str, Any]) -> dict[str, Any]:
    return NumberOut.model_validate({**record, "number_id": record["id"]}).model_dump(mode="json")


async def _check_refs(ctx: Ctx, trunk_id: UUID | None, agent_id: UUID | None) -> None:
    pool = ctx.app[POOL]
    if trunk_id is not None and await trunk_store.trunks.get(pool, ctx.org_id, trunk_id) is None:
        raise errors.ValidationFailed.field("trunk_id", "No trunk with that id.")
    if agent_id is not None and await agent_store.agents.get(pool, ctx.org_id, agent_id) is None:
        raise errors.ValidationFailed.field("agent_id", "No agent with that id.")


@registry.route("POST", "/numbers", summary="Add a phone number", tag="Numbers", body=NumberCreate,
                response=NumberOut, status=201, errors=(409,))
async def create_number(ctx: Ctx) -> Result:
    body: NumberCreate = ctx.body
    await _check_refs(ctx, body.trunk_id, body.agent_id)
    record = await number_store.numbers.insert(ctx.app[POOL], ctx.org_id, body.model_dump())
    return Result(present(record), status=201)


@registry.route("GET", "/numbers", summary="List phone numbers", tag="Numbers", query=NumberQuery,
                response=NumberOut, many=True)
async def list_numbers(ctx: Ctx) -> Result:
    q: NumberQuery = ctx.query
    where = Where()
    for col in ("trunk_id", "agent_id", "status"):
        if getattr(q, col) is not None:
            where.add(f"{col} = {{}}", getattr(q, col))
    items, total = await number_store.numbers.list(ctx.app[POOL], ctx.org_id, where, q.limit, q.offset)
    return Result([present(r) for r in items], total=total, limit=q.limit, offset=q.offset)


@registry.route("GET", "/numbers/{number_id}", summary="Get a phone number", tag="Numbers", response=NumberOut,
                errors=(404,))
async def get_number(ctx: Ctx) -> Result:
    record = await number_store.numbers.get(ctx.app[POOL], ctx.org_id, ctx.ids["number_id"])
    if record is None:
        raise errors.NotFound("No number with that id.")
    return Result(present(record))


@registry.route("PATCH", "/numbers/{number_id}", summary="Update a phone number", tag="Numbers", body=NumberUpdate,
                response=NumberOut, errors=(404,))
async def update_number(ctx: Ctx) -> Result:
    changes = ctx.body.model_dump(exclude_unset=True)
    for name in ("trunk_id", "status", "name"):
        if name in changes and changes[name] is None:
            raise errors.ValidationFailed.field(name, f"{name} cannot be null.")
    if await number_store.numbers.get(ctx.app[POOL], ctx.org_id, ctx.ids["number_id"]) is None:
        raise errors.NotFound("No number with that id.")
    await _check_refs(ctx, changes.get("trunk_id"), changes.get("agent_id"))
    record = await number_store.numbers.update(ctx.app[POOL], ctx.org_id, ctx.ids["number_id"], changes)
    if record is None:
        raise errors.NotFound("No number with that id.")
    return Result(present(record))


@registry.route("DELETE", "/numbers/{number_id}", summary="Delete a phone number", tag="Numbers", status=204,
                errors=(404,))
async def delete_number(ctx: Ctx) -> None:
    if not await number_store.numbers.delete(ctx.app[POOL], ctx.org_id, ctx.ids["number_id"]):
        raise errors.NotFound("No number with that id.")
