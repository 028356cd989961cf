"""The stall watch names what holds the event loop when the media tick cannot run."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from switchboard.platform.stallwatch import StallWatch


def hold_the_loop_for(seconds: float) -> None:
    time.sleep(seconds)  # a blocking call where the event loop should be turning


async def test_a_blocked_loop_is_reported_with_its_stack(caplog: pytest.LogCaptureFixture) -> None:
    watch = StallWatch(threshold=0.1, interval=0.01)
    watch.start()
    try:
        with caplog.at_level(logging.WARNING, logger="switchboard.platform.stallwatch"):
            await asyncio.sleep(0.05)
            before = watch.stalls  # (a loaded machine may already have held the loop back a moment)
            hold_the_loop_for(0.4)
            for _ in range(100):  # the loop turns again: the stall's length is logged
                if watch.worst_ms:
                    break
                await asyncio.sleep(0.01)
    finally:
        watch.stop()
    assert watch.stalls == before + 1  # one stall, reported once however long it lasts
    assert watch.worst_ms >= 300
    stuck = [r.getMessage() for r in caplog.records if "has not turned" in r.getMessage()]
    assert sum("hold_the_loop_for" in m for m in stuck) == 1


async def test_a_long_garbage_collection_is_named_and_startup_objects_can_be_left_out_of_it(
        caplog: pytest.LogCaptureFixture) -> None:
    import gc

    from switchboard.platform.stallwatch import freeze_startup_objects, thaw_startup_objects

    watch = StallWatch(threshold=0.1, interval=0.01, gc_log_ms=0.0)  # every collection counts as long here
    watch.start()
    try:
        with caplog.at_level(logging.WARNING, logger="switchboard.platform.stallwatch"):
            gc.collect()
    finally:
        watch.stop()
    assert watch.gc_pauses >= 1
    assert any("garbage collection of generation 2" in r.getMessage() for r in caplog.records)
    thaw_startup_objects()  # (whatever an earlier test in this process left frozen)
    try:
        frozen = freeze_startup_objects()
        assert frozen == gc.get_freeze_count() > 10_000  # the interpreter, numpy, the server's modules
        scanned = len(gc.get_objects())  # what a full collection walks now
        assert scanned < frozen
    finally:
        thaw_startup_objects()
    assert gc.get_freeze_count() == 0
