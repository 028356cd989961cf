"""The call id on every log line about a call.

``CallIdFilter`` (installed on the root handlers by ``install``) sets ``record.call_id`` from, in order:
the ``call_id`` context variable (``with bound_call(id):`` — asyncio tasks inherit it), else the name of
the running asyncio task: the call domain names each call's tasks ``call-<uuid>`` / ``call-<uuid>-<what>``,
so lines logged from inside a call's tasks carry its id without each call site passing it. Lines about
no call get ``-``. The format adds ``[call=<id>]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import re
from collections.abc import Iterator
from typing import Any

CALL_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("call_id", default=None)
FORMAT = "%(asctime)s %(levelname)s %(name)s%(call_tag)s: %(message)s"  # call_tag: " [call=<id>]" or ""
_TASK_CALL = re.compile(r"^call-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")


@contextlib.contextmanager
def bound_call(call_id: Any) -> Iterator[None]:
    token = CALL_ID.set(str(call_id) if call_id is not None else None)
    try:
        yield
    finally:
        CALL_ID.reset(token)


def current_call_id() -> str | None:
    found = CALL_ID.get()
    if found:
        return found
    try:
        task = asyncio.current_task()
    except RuntimeError:
        return None
    if task is not None:
        match = _TASK_CALL.match(task.get_name())
        if match:
            return match[1]
    return None


class CallIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        call_id = getattr(record, "call_id", None) or current_call_id() or "-"
        record.call_id = call_id
        record.call_tag = f" [call={call_id}]" if call_id != "-" else ""
        return True


def install(logger: logging.Logger | None = None) -> None:
    """Add the filter and the call-aware format to every handler of ``logger`` (default: root)."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, CallIdFilter) for f in handler.filters):
            handler.addFilter(CallIdFilter())
        handler.setFormatter(logging.Formatter(FORMAT))
