"""SIP trunks: passwords are encrypted at rest and never returned."""

from __future__ import annotations

from typing import Any

from api import errors
from api.keys import CALLS, POOL, SECRETS
from api.models.trunks import TrunkCreate, TrunkOut, TrunkQuery, TrunkStatus, TrunkUpdate
from api.routing import Ctx, Result
from store import trunks as trunk_store
from store.types import Where

from . import registry

DEFAULTS: dict[str, Any] = {
    "port": 5060, "transport": "udp", "register": False, "register_expires": 3600, "number_format": "e164",
    "dial_prefix": "", "inbound_cidrs": [], "codecs": ["PCMU", "PCMA"], "enabled": True,
}


def present(record: dict[str, Any]) -> dict[str, Any]:
    data = {k: v for k, v in record.items() if k != "password_enc"}
    data["trunk_id"] = record["id"]
    data["has_password"] = bool(record.get("password_enc"))
    data["inbound_cidrs"] = [str(c) for c in record["inbound_cidrs"]]
    data["rate_per_minute"] = float(record["rate_per_minute"]) if record["rate_per_minute"] is not None else None
    data["registration_state"] = record["reg_state"]
    return TrunkOut.model_validate(data).model_dump(mode="json", by_alias=True)


def _columns(ctx: Ctx, fields: dict[str, Any]) -> dict[str, Any]:
    values = dict(fields)
    if "password" in values:
        password = values.pop("password")
        values["password_enc"] = ctx.app[SECRETS].encrypt(password) if password is not None else None
    return values


def _check_registration(values: dict[str, Any]) -> None:
    if values.get("register") and not (values.get("username") and values.get("password_enc")):
        raise errors.ValidationFailed.field("register", "A registering trunk needs a username and a password.")


@registry.route("POST", "/trunks", summary="Create a SIP trunk", tag="Trunks", body=TrunkCreate, response=TrunkOut,
                status=201)
async def create_trunk(ctx: Ctx) -> Result:
    given = ctx.body.model_dump(exclude_unset=True, by_alias=True)
    values = _columns(ctx, {**DEFAULTS, **{k: v for k, v in given.items() if v is not None}})
    _check_registration(values)
    record = await trunk_store.trunks.insert(ctx.app[POOL], ctx.org_id, values)
    ctx.app[CALLS].trunk_changed(record["id"])
    return Result(present(record), status=201)


@registry.route("GET", "/trunks", summary="List trunks", tag="Trunks", query=TrunkQuery, response=TrunkOut, many=True)
async def list_trunks(ctx: Ctx) -> Result:
    q: TrunkQuery = ctx.query
    where = Where()
    if q.enabled is not None:
        where.add("enabled = {}", q.enabled)
    items, total = await trunk_store.trunks.list(ctx.app[POOL], ctx.org_id, where, q.limit, q.offset)
    return Result([present(r) for r in items], total=total, limit=q.limit, offset=q.offset)


async def load_trunk(ctx: Ctx, trunk_id: Any) -> dict[str, Any]:
    record = await trunk_store.trunks.get(ctx.app[POOL], ctx.org_id, trunk_id)
    if record is None:
        raise errors.NotFound("No trunk with that id.")
    return record


@registry.route("GET", "/trunks/{trunk_id}", summary="Get a trunk", tag="Trunks", response=TrunkOut, errors=(404,))
async def get_trunk(ctx: Ctx) -> Result:
    return Result(present(await load_trunk(ctx, ctx.ids["trunk_id"])))


@registry.route("PATCH", "/trunks/{trunk_id}", summary="Update a trunk (re-registers it)", tag="Trunks",
                body=TrunkUpdate, response=TrunkOut, errors=(404,))
async def update_trunk(ctx: Ctx) -> Result:
    current = await load_trunk(ctx, ctx.ids["trunk_id"])
    given = ctx.body.model_dump(exclude_unset=True, by_alias=True)
    nullable = {"username", "password", "auth_username", "realm", "outbound_proxy", "from_domain",
                "max_concurrent_calls", "calls_per_second", "rate_per_minute"}
    for name, value in given.items():
        if value is None and name not in nullable:
            raise errors.ValidationFailed.field(name, f"{name} cannot be null.")
    changes = _columns(ctx, given)
    _check_registration({**current, **changes})
    record = await trunk_store.trunks.update(ctx.app[POOL], ctx.org_id, ctx.ids["trunk_id"], changes)
    if record is None:
        raise errors.NotFound("No trunk with that id.")
    ctx.app[CALLS].trunk_changed(record["id"])
    return Result(present(record))


@registry.route("DELETE", "/trunks/{trunk_id}", summary="Delete a trunk", tag="Trunks", status=204, errors=(404, 409))
async def delete_trunk(ctx: Ctx) -> None:
    async with ctx.app[POOL].acquire() as conn, conn.transaction():
        if await trunk_store.trunks.lock(conn, ctx.org_id, ctx.ids["trunk_id"]) is None:
            raise errors.NotFound("No trunk with that id.")
        use = await trunk_store.usage(conn, ctx.org_id, ctx.ids["trunk_id"])
        if use["numbers"] or use["active_calls"]:
            raise errors.Conflict(
                f"The trunk is in use by {use['numbers']} number(s) and {use['active_calls']} active call(s)."
            )
        await trunk_store.trunks.delete(conn, ctx.org_id, ctx.ids["trunk_id"])
    ctx.app[CALLS].trunk_changed(ctx.ids["trunk_id"])


@registry.route("GET", "/trunks/{trunk_id}/status", summary="Registration state and active calls", tag="Trunks",
                response=TrunkStatus, errors=(404,))
async def trunk_status(ctx: Ctx) -> Result:
    record = await load_trunk(ctx, ctx.ids["trunk_id"])
    use = await trunk_store.usage(ctx.app[POOL], ctx.org_id, record["id"])
    data = {
        "trunk_id": record["id"], "register": record["register"], "registration_state": record["reg_state"],
        "last_error": record["reg_last_error"], "expires_at": record["reg_expires_at"],
        "active_calls": use["active_calls"], "max_concurrent_calls": record["max_concurrent_calls"],
    }
    return Result(TrunkStatus.model_validate(data).model_dump(mode="json", by_alias=True))
