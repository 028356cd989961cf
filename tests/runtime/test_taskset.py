"""A stop cannot hang on a task that will not end: TaskSet.close(grace) names it and moves on."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg
import pytest

from switchboard.tasks import TaskSet


async def _stubborn(release: asyncio.Event) -> None:
    """Swallows its cancellation and waits on (as a `finally` awaiting a lost peer would)."""
    while True:
        with contextlib.suppress(asyncio.CancelledError):
            await release.wait()
            return


async def test_close_with_a_grace_leaves_a_task_that_ignores_its_cancellation(caplog: pytest.LogCaptureFixture) -> None:
    tasks = TaskSet()
    release = asyncio.Event()
    polite = tasks.spawn(asyncio.sleep(60), "polite")
    stubborn = tasks.spawn(_stubborn(release), "stubborn")
    await asyncio.sleep(0)  # both started
    with caplog.at_level(logging.ERROR, logger="switchboard.tasks"):
        await asyncio.wait_for(tasks.close(0.2), 5)
    assert polite.cancelled()
    assert not stubborn.done()
    [record] = [r for r in caplog.records if "stubborn" in r.getMessage()]
    assert "_stubborn (test_taskset.py:" in record.getMessage()  # where it waits
    release.set()
    await stubborn


async def test_close_with_no_grace_waits_for_every_task() -> None:
    tasks = TaskSet()
    release = asyncio.Event()
    stubborn = tasks.spawn(_stubborn(release), "stubborn")
    await asyncio.sleep(0)
    closing = asyncio.ensure_future(tasks.close(None))
    await asyncio.sleep(0.2)
    assert not closing.done()
    release.set()
    await asyncio.wait_for(closing, 5)
    assert stubborn.done()


async def test_a_stop_closes_the_database_pool_even_while_a_connection_is_held(
        database_url: str, caplog: pytest.LogCaptureFixture) -> None:
    from store.db import create_pool
    from switchboard.server import close_pool

    pool = await create_pool(database_url, min_size=1, max_size=2)
    held = await pool.acquire()  # a task that outlived its owner's stop, say
    with caplog.at_level(logging.ERROR, logger="switchboard.server"):
        await asyncio.wait_for(close_pool(pool, grace=0.3), 10)
    assert pool.is_closing()
    with pytest.raises(asyncpg.InterfaceError):  # the held connection was closed under its holder
        await held.fetchval("SELECT 1")
    assert any("still in use" in r.getMessage() for r in caplog.records)


async def test_a_stop_closes_an_idle_pool_quietly(database_url: str, caplog: pytest.LogCaptureFixture) -> None:
    from store.db import create_pool
    from switchboard.server import close_pool

    pool = await create_pool(database_url, min_size=1, max_size=2)
    assert await pool.fetchval("SELECT 1") == 1
    with caplog.at_level(logging.ERROR, logger="switchboard.server"):
        await close_pool(pool, grace=5)
    assert pool.is_closing() and not caplog.records
