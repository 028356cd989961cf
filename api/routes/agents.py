"""Agents: create, list, get, partial update, delete (refused while calls are active)."""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

from api import errors
from api.keys import POOL, VOICES
from api.models.agents import DEFAULTS, AgentCreate, AgentFields, AgentOut, AgentQuery, AgentUpdate
from api.routing import Ctx, Result
from store import agents as agent_store
from store import knowledge as kb_store
from store.types import Where

from . import registry

_COLUMNS = ("name", "enabled")


def agent_config(body: AgentFields, voices: Any, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """The stored configuration: defaults (or the current config), overlaid with the fields given."""
    # top-level: only the fields given; nested objects whole, with their own defaults
    given = body.model_dump(mode="json", include=set(body.model_fields_set))
    for col in _COLUMNS:
        given.pop(col, None)
    start = base if base is not None else {k: v for k, v in DEFAULTS.items() if k not in _COLUMNS}
    merged = _merge_nested(start, given, body)
    config = {**start, **given, **merged}
    for key, value in list(config.items()):
        if value is None and DEFAULTS.get(key) is not None:
            config[key] = DEFAULTS[key]  # an explicit null means "the default"
    voice = voices.get(config["voice_id"])
    if voice is None:
        raise errors.ValidationFailed.field("voice_id", f"Unknown voice_id {config['voice_id']!r}; see GET /voices.")
    if "language" not in body.model_fields_set and (base is None or "voice_id" in body.model_fields_set):
        # the language follows the voice unless given: a new agent, or a PATCH that changes the voice
        if _LANGUAGE.fullmatch(voice.language or ""):
            config["language"] = voice.language
    return config


# Objects whose keys a PATCH sets one by one: the keys not named keep their value ({"speed": 1.2} leaves
# stability alone); null on one key resets that key; null on the whole object resets the object.
_MERGED = ("voice_settings",)
_LANGUAGE = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}")


def _merge_nested(start: dict[str, Any], given: dict[str, Any], body: AgentFields) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in _MERGED:
        value = getattr(body, key, None)
        if key not in given or value is None:
            continue
        named = value.model_dump(mode="json", include=set(value.model_fields_set))
        stored = start.get(key)
        current: dict[str, Any] = stored if isinstance(stored, dict) else {}
        out[key] = {k: named[k] if k in named else current.get(k) for k in type(value).model_fields}
    return out


async def check_knowledge_bases(ctx: Ctx, body: AgentFields, config: dict[str, Any]) -> None:
    """The knowledge bases an agent names must be its organization's own (422 otherwise)."""
    if "knowledge_base_ids" not in body.model_fields_set:
        return
    ids = [UUID(str(k)) for k in config.get("knowledge_base_ids") or []]
    missing = await kb_store.missing_ids(ctx.app[POOL], ctx.org_id, ids)
    if missing:
        fields = {f"knowledge_base_ids.{ids.index(k)}": ["No knowledge base with this id."] for k in missing}
        raise errors.ValidationFailed(f"Unknown knowledge base id {missing[0]}; see GET /knowledge-bases.",
                                      fields=fields)


def present(record: dict[str, Any]) -> dict[str, Any]:
    data = {**DEFAULTS, **record["config"], "name": record["name"], "enabled": record["enabled"],
            "id": record["id"], "agent_id": record["id"], "created_at": record["created_at"],
            "updated_at": record["updated_at"]}
    return AgentOut.model_validate(data).model_dump(mode="json")


@registry.route("POST", "/agents", summary="Create an agent", tag="Agents", body=AgentCreate, response=AgentOut,
                status=201)
async def create_agent(ctx: Ctx) -> Result:
    body: AgentCreate = ctx.body
    config = agent_config(body, ctx.app[VOICES])
    await check_knowledge_bases(ctx, body, config)
    record = await agent_store.agents.insert(
        ctx.app[POOL], ctx.org_id,
        {"name": body.name, "enabled": body.enabled if body.enabled is not None else True, "config": config},
    )
    return Result(present(record), status=201)


@registry.route("GET", "/agents", summary="List agents", tag="Agents", query=AgentQuery, response=AgentOut, many=True)
async def list_agents(ctx: Ctx) -> Result:
    q: AgentQuery = ctx.query
    where = Where()
    if q.enabled is not None:
        where.add("enabled = {}", q.enabled)
    items, total = await agent_store.agents.list(ctx.app[POOL], ctx.org_id, where, q.limit, q.offset)
    return Result([present(r) for r in items], total=total, limit=q.limit, offset=q.offset)


async def load_agent(ctx: Ctx, agent_id: Any) -> dict[str, Any]:
    record = await agent_store.agents.get(ctx.app[POOL], ctx.org_id, agent_id)
    if record is None:
        raise errors.NotFound("No agent with that id.")
    return record


@registry.route("GET", "/agents/{agent_id}", summary="Get an agent", tag="Agents", response=AgentOut, errors=(404,))
async def get_agent(ctx: Ctx) -> Result:
    return Result(present(await load_agent(ctx, ctx.ids["agent_id"])))


@registry.route("PATCH", "/agents/{agent_id}", summary="Update an agent (only the fields given)", tag="Agents",
                body=AgentUpdate, response=AgentOut, errors=(404,))
async def update_agent(ctx: Ctx) -> Result:
    body: AgentUpdate = ctx.body
    current = await load_agent(ctx, ctx.ids["agent_id"])
    changes: dict[str, Any] = {"config": agent_config(body, ctx.app[VOICES], base=current["config"])}
    await check_knowledge_bases(ctx, body, changes["config"])
    for col in _COLUMNS:
        value = getattr(body, col)
        if col in body.model_fields_set:
            if value is None:
                raise errors.ValidationFailed.field(col, f"{col} cannot be null.")
            changes[col] = value
    record = await agent_store.agents.update(ctx.app[POOL], ctx.org_id, ctx.ids["agent_id"], changes)
    if record is None:
        raise errors.NotFound("No agent with that id.")
    return Result(present(record))


@registry.route("DELETE", "/agents/{agent_id}", summary="Delete an agent", tag="Agents", status=204, errors=(404, 409))
async def delete_agent(ctx: Ctx) -> None:
    pool = ctx.app[POOL]
    async with pool.acquire() as conn, conn.transaction():
        if await agent_store.agents.lock(conn, ctx.org_id, ctx.ids["agent_id"]) is None:
            raise errors.NotFound("No agent with that id.")
        if await agent_store.active_call_count(conn, ctx.org_id, ctx.ids["agent_id"]):
            raise errors.Conflict("The agent has active calls; end them or wait for them to finish.")
        await agent_store.agents.delete(conn, ctx.org_id, ctx.ids["agent_id"])
