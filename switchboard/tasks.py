"""Every background task has an owner: a TaskSet names each task it starts and holds it until it is done
(nothing is dropped mid-flight or collected while running), and cancels or awaits them together."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)

CLOSE_GRACE_SECONDS = 10.0


class TaskSet:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def __len__(self) -> int:
        return len(self._tasks)

    def cancel(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    async def wait(self, grace: float | None = None) -> None:
        """Until every task is done, or ``grace`` seconds have passed."""
        pending = [t for t in self._tasks if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=grace)

    async def close(self, grace: float | None = CLOSE_GRACE_SECONDS) -> None:
        """Cancel every task and wait until they have all finished, at most ``grace`` seconds (None: for as
        long as it takes). A task still running then (it swallowed its cancellation, or awaits something in a
        ``finally``) is logged with where it waits and left behind: a stop must not hang on it."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if not tasks:
            return
        _, stuck = await asyncio.wait(tasks, timeout=grace)
        for task in stuck:
            log.error("task %s did not end %.0f s after it was cancelled; it waits in %s",
                      task.get_name(), grace or 0.0, where(task))
        for task in tasks:
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: a task that failed while being cancelled is not reported twice


def where(task: asyncio.Task[Any]) -> str:
    """The chain of awaits from a task's coroutine down to the one it is suspended in."""
    chain: list[str] = []
    coro: Any = task.get_coro()
    while coro is not None and len(chain) < 12:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            chain.append(f"{frame.f_code.co_name} ({frame.f_code.co_filename.rsplit('/', 2)[-1]}:{frame.f_lineno})")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return " -> ".join(chain) or "(done)"
