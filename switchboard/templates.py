"""Fill ``{{user.name}}``-style variables in prompts and messages from a call's ``user_data``."""

from __future__ import annotations

import re
from typing import Any

_VAR = re.compile(r"{{\s*([A-Za-z_][\w.]*)\s*}}")


def fill(text: str, user_data: dict[str, Any]) -> str:
    """Replace ``{{user.x}}`` (or ``{{x}}``) with ``user_data["x"]``; unknown variables become empty."""

    def value(match: re.Match[str]) -> str:
        path = match[1].split(".")
        if path[0] == "user":
            path = path[1:]
        current: Any = user_data
        for part in path:
            if not isinstance(current, dict) or part not in current:
                return ""
            current = current[part]
        return str(current)

    return _VAR.sub(value, text)
