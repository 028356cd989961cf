"""An agent's tools: OpenAI function definitions for the model, and their execution.

Built-ins (`end_call`, `transfer_call`, `send_dtmf`, `knowledge_lookup`) do not act here: they return a
`ToolOutcome` whose `action` the call runtime carries out (hang up, REFER, send digits); knowledge
lookups go to the `knowledge` callback. Custom tools `{name, description, parameters, url, method}` are
called over HTTP with aiohttp: GET/DELETE send the arguments as the query string, other methods as a
JSON body; each call has a timeout and its response (truncated) goes back to the model. A tool never
raises into the conversation: failures become a short error text the model can talk about.
Tool URLs that resolve to private, loopback or link-local addresses are refused unless `allow_private`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import re
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from .providers.base import ToolCall

log = logging.getLogger(__name__)

BUILTINS = ("end_call", "transfer_call", "send_dtmf", "knowledge_lookup")
MAX_RESULT_CHARS = 4000
_DTMF = re.compile(r"^[0-9*#A-Da-dwW,]{1,40}$")

_DESCRIPTIONS = {
    "end_call": "Hang up the call. Use it after saying goodbye, when the caller is done.",
    "transfer_call": "Transfer the caller to a human or another number.",
    "send_dtmf": "Press keys on the phone keypad (e.g. to navigate a phone menu).",
    "knowledge_lookup": "Search the knowledge base for facts needed to answer the caller.",
}
_PARAMETERS: dict[str, dict[str, Any]] = {
    "end_call": {"type": "object", "properties": {"reason": {"type": "string"}}},
    "transfer_call": {"type": "object", "properties": {
        "target": {"type": "string", "description": "SIP URI or E.164 number; omit for the default."},
        "reason": {"type": "string"}}},
    "send_dtmf": {"type": "object", "properties": {
        "digits": {"type": "string", "description": "Keys to press: 0-9, *, #."}}, "required": ["digits"]},
    "knowledge_lookup": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
}


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    call: ToolCall
    content: str  # what the model is told
    action: str | None = None  # end_call | transfer_call | send_dtmf: for the runtime to carry out
    args: dict[str, Any] = field(default_factory=dict)
    error: bool = False
    duration_ms: float = 0.0

    @property
    def ends_turn(self) -> bool:
        """The conversation does not go back to the model after this (the call ends or leaves)."""
        return self.action in ("end_call", "transfer_call") and not self.error


def _get(tool: Any, key: str) -> Any:
    return tool.get(key) if isinstance(tool, Mapping) else getattr(tool, key, None)


def tool_specs(tools: Sequence[Any]) -> list[dict[str, Any]]:
    """Agent `tools` (dicts or API models) → OpenAI `tools` parameter."""
    specs: list[dict[str, Any]] = []
    for t in tools:
        kind = _get(t, "type")
        if kind in BUILTINS:
            name, desc, params = kind, _get(t, "description") or _DESCRIPTIONS[kind], _PARAMETERS[kind]
        elif kind == "function":
            name, desc = _get(t, "name"), _get(t, "description") or ""
            params = _get(t, "parameters") or {"type": "object", "properties": {}}
        else:
            raise ValueError(f"unknown tool type {kind!r}")
        specs.append({"type": "function", "function": {"name": name, "description": desc, "parameters": params}})
    names = [s["function"]["name"] for s in specs]
    if len(names) != len(set(names)):
        raise ValueError(f"duplicate tool names in {names}")
    return specs


async def _check_public(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url}")
    infos = await asyncio.get_running_loop().getaddrinfo(parts.hostname, parts.port or 443,
                                                         type=socket.SOCK_STREAM)
    for info in infos:
        ip = ipaddress.ip_address(info[4][0])
        if not ip.is_global:
            raise ValueError(f"{parts.hostname} resolves to a non-public address ({ip})")


class ToolExecutor:
    def __init__(
        self,
        tools: Sequence[Any],
        *,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 10.0,
        knowledge: Callable[[str], Awaitable[str]] | None = None,
        allow_private: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.specs = tool_specs(tools)
        self._tools = {s["function"]["name"]: t for s, t in zip(self.specs, tools, strict=True)}
        self._session = session
        self._own_session = session is None
        self.timeout = timeout
        self.knowledge = knowledge
        self.allow_private = allow_private
        self.headers = dict(headers or {})

    async def aclose(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def run(self, call: ToolCall) -> ToolOutcome:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        outcome = await self._run(call)
        return ToolOutcome(outcome.call, outcome.content, outcome.action, outcome.args, outcome.error,
                           (loop.time() - t0) * 1000.0)

    async def _run(self, call: ToolCall) -> ToolOutcome:
        tool = self._tools.get(call.name)
        if tool is None:
            return ToolOutcome(call, f"error: there is no tool named {call.name}", error=True)
        if call.arguments_error:
            return ToolOutcome(call, "error: the arguments were not a JSON object", error=True)
        args = call.args()
        kind = _get(tool, "type")
        if kind == "end_call":
            return ToolOutcome(call, "The call is ending.", "end_call", args)
        if kind == "transfer_call":
            target = args.get("target") or _get(tool, "target")
            if not target:
                return ToolOutcome(call, "error: no transfer target is configured", error=True)
            return ToolOutcome(call, f"Transferring to {target}.", "transfer_call", {**args, "target": target})
        if kind == "send_dtmf":
            digits = str(args.get("digits", ""))
            if not _DTMF.match(digits):
                return ToolOutcome(call, "error: digits must be 0-9, * or #", error=True)
            return ToolOutcome(call, f"Sent {digits}.", "send_dtmf", {"digits": digits})
        if kind == "knowledge_lookup":
            if self.knowledge is None:
                return ToolOutcome(call, "error: no knowledge base is attached", error=True)
            try:
                text = await asyncio.wait_for(self.knowledge(str(args.get("query", ""))), self.timeout)
            except Exception as e:
                log.warning("knowledge lookup failed: %r", e)
                return ToolOutcome(call, "error: the knowledge base is unavailable", error=True)
            return ToolOutcome(call, text[:MAX_RESULT_CHARS] or "Nothing found.", None, args)
        return await self._http(call, tool, args)

    async def _http(self, call: ToolCall, tool: Any, args: dict[str, Any]) -> ToolOutcome:
        url, method = str(_get(tool, "url")), str(_get(tool, "method") or "POST").upper()
        try:
            if not self.allow_private:
                await _check_public(url)
            if self._session is None:
                self._session = aiohttp.ClientSession()
            kw: dict[str, Any] = {"headers": self.headers, "timeout": aiohttp.ClientTimeout(total=self.timeout),
                                  "allow_redirects": False}
            if method in ("GET", "DELETE"):
                kw["params"] = {k: v if isinstance(v, str) else json.dumps(v) for k, v in args.items()}
            else:
                kw["json"] = args
            async with self._session.request(method, url, **kw) as resp:
                body = await resp.content.read(MAX_RESULT_CHARS * 4)
                text = body.decode(errors="replace")[:MAX_RESULT_CHARS]
                if resp.status >= 400:
                    return ToolOutcome(call, f"error: the {call.name} service answered HTTP {resp.status}: {text[:500]}",
                                       None, args, error=True)
                return ToolOutcome(call, text or "(empty response)", None, args)
        except TimeoutError:
            return ToolOutcome(call, f"error: {call.name} timed out after {self.timeout:g} s", None, args, error=True)
        except (aiohttp.ClientError, ValueError, OSError) as e:
            log.warning("tool %s failed: %r", call.name, e)
            return ToolOutcome(call, f"error: could not reach the {call.name} service", None, args, error=True)
