"""Build a call's response engine from its agent configuration and the organization's provider keys."""

from __future__ import annotations

import os
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from .engines import LlmEngine, ResponseEngine, RetrievalEngine, system_prompt
from .tools import ToolExecutor

# provider name → (default base URL, environment variable holding a key)
LLM_PROVIDERS: dict[str, tuple[str | None, str]] = {
    "openai": (None, "OPENAI_API_KEY"),
    "groq": ("https://api.groq.com/openai/v1", "GROQ_API_KEY"),
}
DEFAULT_MODEL = "gpt-4.1-mini"

KeyLookup = Callable[[str, str], Awaitable[str | None]]  # (provider_type, provider_name) → key


async def build_engine(agent: dict[str, Any], user_data: dict[str, Any], *, keys: KeyLookup,
                       knowledge: Callable[[str], Awaitable[str | None]] | None = None,
                       allow_private_tools: bool = False, call: dict[str, Any] | None = None) -> ResponseEngine:
    """``llm`` → the OpenAI-compatible engine (an organization key, else the environment's); ``custom-llm``
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
        default_base, env_var = LLM_PROVIDERS.get(provider, (None, f"{provider.upper()}_API_KEY"))
        base_url = engine.get("base_url") or default_base
        api_key = await keys("llm", provider) or os.environ.get(env_var)
        if base_url or api_key:
            from .providers.openai_llm import OpenAILLM

            llm = OpenAILLM(model=engine.get("llm_model") or DEFAULT_MODEL, base_url=base_url,
                            api_key=api_key or "", temperature=engine.get("temperature"))
            tools = agent.get("tools") or []

            async def lookup(query: str) -> str:
                return (await knowledge(query) if knowledge else None) or "No matching knowledge."

            executor = ToolExecutor(tools, knowledge=lookup, allow_private=allow_private_tools) if tools else None
            return LlmEngine(llm, system_prompt(agent, user_data), executor, knowledge=knowledge)
    return RetrievalEngine(knowledge, engine.get("fallback_message"))
