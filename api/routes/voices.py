"""Voices: the local flite and espeak-ng voices always, cloud voices once the organization has their keys."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from api import errors
from api.keys import POOL, VOICES
from api.models.common import QueryModel, ResponseModel
from api.routing import Ctx, Result
from store import provider_keys

from . import registry


class VoiceQuery(QueryModel):
    provider: Annotated[str, Field(max_length=50)] | None = None
    language: Annotated[str, Field(max_length=35)] | None = None
    gender: Literal["male", "female", "neutral"] | None = None


class VoiceOut(ResponseModel):
    voice_id: str
    name: str
    provider: str
    language: str
    gender: str
    description: str


@registry.route("GET", "/voices", summary="List voices", tag="Voices", query=VoiceQuery, response=VoiceOut, many=True)
async def list_voices(ctx: Ctx) -> Result:
    q = ctx.query
    found = ctx.app[VOICES].search(q.provider, q.language, q.gender, available=await _providers(ctx))
    return Result([v.public() for v in found], total=len(found), limit=len(found), offset=0)


@registry.route("GET", "/voices/{voice_id}", summary="Get a voice", tag="Voices", response=VoiceOut, errors=(404,),
                text_params=("voice_id",))
async def get_voice(ctx: Ctx) -> Result:
    voice = ctx.app[VOICES].get(ctx.request.match_info["voice_id"])
    if voice is not None and voice.cloud and voice.provider not in await _providers(ctx):
        voice = None  # cloud voices exist only for organizations holding the provider's key
    if voice is None:
        raise errors.NotFound("No voice with that id.")
    return Result(voice.public())


async def _providers(ctx: Ctx) -> set[str]:
    """The cloud providers whose voices this organization can use: those it holds a key for."""
    return await provider_keys.names(ctx.app[POOL], ctx.org_id)
