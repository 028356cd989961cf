"""Build a call's response engine from its agent configuration and the organization's provider keys.

Which key goes to which URL is decided by the provider registry (`agents.providers.registry.endpoint`):
a tenant's own `base_url` gets the organization's key or none, never the operator's, and is reached
through `agents.netguard` (checked, resolved once, pinned)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from . import netguard
from .engines import LlmEngine, ResponseEngine, RetrievalEngine, system_prompt
from .providers.registry import Endpoint, KeyLookupError, ServerProviders, endpoint
from .tools import ToolExecutor

log = logging.getLogger(__name__)
DEFAULT_MODEL = "gpt-4.1-mini"

KeyLookup = Callable[[str, str], Awaitable[str | None]]  # (provider_type, provider_name) → key


async def build_engine(agent: dict[str, Any], user_data: dict[str, Any], *, keys: KeyLookup,
                       knowledge: Callable[[str], Awaitable[str | None]] | None = None,
                       allow_private_tools: bool = False, call: dict[str, Any] | None = None,
                       server: ServerProviders | None = None) -> ResponseEngine:
    """``llm`` → the OpenAI-compatible engine (see the module docstring for keys and URLs); ``custom-llm``
    → the customer's websocket (connecting as this returns; ``call``: the call's details for it, with
    ``call_id``); anything else, or an ``llm`` with no way to reach a model, → the retrieval engine."""
    engine = agent.get("response_engine") or {}
    if engine.get("type") == "custom-llm" and engine.get("llm_websocket_url"):
        from .custom_llm import CustomLlmEngine

        details = dict(call or {})
        custom = CustomLlmEngine(engine["llm_websocket_url"], str(details.get("call_id") or uuid.uuid4()), details,
                                 allow_private=allow_private_tools)
        custom.start()
        return custom
    if engine.get("type") == "llm":
        provider = (engine.get("llm_provider") or "openai").lower()
        llm = await llm_client(engine, provider, keys, allow_private=allow_private_tools, server=server)
        if llm is not None:
            tools = agent.get("tools") or []

            async def lookup(query: str) -> str:
                return (await knowledge(query) if knowledge else None) or "No matching knowledge."

            executor = ToolExecutor(tools, knowledge=lookup, allow_private=allow_private_tools) if tools else None
            return LlmEngine(llm, system_prompt(agent, user_data), executor, knowledge=knowledge)
    return RetrievalEngine(knowledge, engine.get("fallback_message"))


async def llm_client(engine: dict[str, Any], provider: str, keys: KeyLookup, *, allow_private: bool,
                     server: ServerProviders | None = None) -> Any:
    """The OpenAI-compatible client for an ``llm`` engine, or None when no model can be reached (no key
    and no URL of the tenant's, a refused URL, or a failed key lookup — each logged)."""
    try:
        ep: Endpoint = await endpoint(provider, "llm", keys, tenant_base_url=engine.get("base_url"), server=server)
    except KeyLookupError as exc:
        log.error("llm engine: %s; answering from the knowledge base instead", exc.message)
        return None
    http_client = None
    if ep.tenant_url:
        try:
            netguard.check_url(str(ep.base_url), allow_private=allow_private)
        except netguard.Blocked as exc:
            log.warning("llm engine: base_url refused (%s); answering from the knowledge base instead", exc)
            return None
        http_client = netguard.guarded_httpx_client(allow_private)
    elif not ep.api_key:
        return None
    from .providers.openai_llm import OpenAILLM

    return OpenAILLM(model=engine.get("llm_model") or DEFAULT_MODEL, base_url=ep.base_url, api_key=ep.api_key or "",
                     temperature=engine.get("temperature"), http_client=http_client)
