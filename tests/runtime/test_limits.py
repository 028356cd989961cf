"""A call's limits: its maximum duration, and the media timeout that ends a call whose audio stopped."""

from __future__ import annotations

import time

from tests.runtime.conftest import agent_config


async def test_max_duration_ends_the_call(start_call):
    call = await start_call(agent_config(begin_message=None, max_duration_seconds=2))
    t0 = time.monotonic()
    row = await call.ended(limit=10)
    assert (row["status"], row["disconnection_reason"]) == ("completed", "max_duration_reached")
    assert 1.9 <= time.monotonic() - t0 <= 4.0


async def test_a_call_whose_media_stops_is_hung_up(start_call, deps):
    deps.media.media_timeout = 1.0  # SWITCHBOARD_MEDIA_TIMEOUT, short for the test
    call = await start_call(agent_config(begin_message=None))
    call.call.stop_media()
    t0 = time.monotonic()
    row = await call.ended(limit=10)
    assert (row["status"], row["disconnection_reason"]) == ("completed", "media_timeout")
    assert 0.9 <= time.monotonic() - t0 <= 3.0
