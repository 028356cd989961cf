"""`{{user.name}}`-style variables in prompts and messages, filled from a call's `user_data`.

Plain substitution, no expressions and no code: `{{ path }}` where path is dotted identifiers. The path is
looked up in `user_data` as nested keys (`{"user": {"name": "Ann"}}`), then as one flat key
(`{"user.name": "Ann"}`), then without a leading `user.` (`{"name": "Ann"}`), since `user` names the data
itself. Missing values become "". Values are inserted once: text inside a value is never expanded again.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)\s*\}\}")
_MISSING = object()


def _walk(data: Any, parts: list[str]) -> Any:
    for p in parts:
        if isinstance(data, Mapping) and p in data:
            data = data[p]
        elif isinstance(data, list) and p.isdigit() and int(p) < len(data):
            data = data[int(p)]
        else:
            return _MISSING
    return data


def lookup(user_data: Mapping[str, Any] | None, path: str) -> Any:
    if not user_data:
        return None
    parts = path.split(".")
    for candidate in (_walk(user_data, parts), user_data.get(path, _MISSING)):
        if candidate is not _MISSING:
            return candidate
    if parts[0] == "user" and len(parts) > 1:
        rest = _walk(user_data, parts[1:])
        if rest is not _MISSING:
            return rest
    return None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False, default=str)


def render(template: str | None, user_data: Mapping[str, Any] | None) -> str:
    """Fill every `{{path}}`; unknown paths become ""."""
    if not template:
        return ""
    return VARIABLE.sub(lambda m: _text(lookup(user_data, m.group(1))), template)


def variables(template: str | None) -> list[str]:
    """The variable paths a template uses, in order, without repeats."""
    return list(dict.fromkeys(VARIABLE.findall(template or "")))
