"""A newcomer's first minute: a softphone (baresip) calls sip:demo@HOST:PORT and hears the greeting."""

from __future__ import annotations

from pathlib import Path

import pytest

from switchboard.bootstrap import DEMO_AGENT_CONFIG, DEMO_AGENT_NAME
from tests.e2e.conftest import Server
from tests.e2e.helpers import (
    RATE,
    active_span,
    baresip_dial,
    caller_tone_wav,
    flite_reference,
    frame_rms,
    loudness,
    read_mono,
    read_stereo,
    recording_file,
    tone_ratio,
    wait_dump,
)

pytestmark = [pytest.mark.sip]

GREETING = DEMO_AGENT_CONFIG["begin_message"]
CALL_SECONDS = 8.0  # the caller's WAV: baresip hangs up when it ends


async def test_baresip_calls_demo_hears_greeting_and_is_recorded(server: Server, workdir: Path) -> None:
    seen = await server.call_ids()
    source = caller_tone_wav(workdir / "caller.wav", CALL_SECONDS, freq=1000)
    proc, dump_dir = await baresip_dial(workdir, server.demo_uri, source, limit=40)
    try:
        live = await server.wait_new_call(seen, direction="inbound")
        call = await server.wait_call(live["call_id"], {"completed", "failed", "canceled"}, timeout=CALL_SECONDS + 15)
        heard_path = await wait_dump(dump_dir)
    finally:
        await proc.stop()

    # the call row, as the API shows it
    assert (call["status"], call["hangup_cause"], call["disconnection_reason"]) == \
        ("completed", "NORMAL_CLEARING", "user_hangup"), call
    assert call["direction"] == "inbound" and call["agent"] == DEMO_AGENT_NAME and call["to_number"] == "demo"
    assert call["answered_at"] and call["ended_at"] and call["sip_call_id"]
    assert CALL_SECONDS - 2 < call["duration_seconds"] < CALL_SECONDS + 2, call["duration_seconds"]

    # what the caller heard: the greeting, as long as the demo's voice (flite kal16) says it at 8 kHz (±25 %)
    assert DEMO_AGENT_CONFIG["voice_id"] == "flite-kal16"
    reference = flite_reference(GREETING, workdir)
    ref_start, ref_end = active_span(reference)
    ref_len = ref_end - ref_start
    heard, rate = read_mono(heard_path)
    assert rate == RATE
    start, end = active_span(heard)
    assert frame_rms(heard).max() > 1000, "the caller heard silence"
    assert abs((end - start) - ref_len) <= 0.25 * ref_len, (start, end, ref_len, call["transcript"], loudness(heard))
    assert start < 2.0, f"the greeting started {start:.2f} s into the call"

    # the stereo recording: caller left (the 1 kHz tone), agent right (the greeting), the call's length
    row = await server.row(call["call_id"])
    path = recording_file(row, server.data_dir)
    left, right, rec_rate = read_stereo(path)
    assert rec_rate == RATE
    assert abs(len(left) / rec_rate - call["duration_seconds"]) <= 1.5, (len(left) / rec_rate, call["duration_seconds"])
    middle = left[int(2 * rec_rate): int(5 * rec_rate)]
    assert frame_rms(middle).mean() > 1000 and tone_ratio(middle, rec_rate, 1000) > 0.9
    r_start, r_end = active_span(right)
    assert frame_rms(right).max() > 1000, "the agent channel is silent"
    assert abs((r_end - r_start) - ref_len) <= 0.25 * ref_len, (r_start, r_end, ref_len)
    assert tone_ratio(right[int(r_start * rec_rate): int(r_end * rec_rate)], rec_rate, 1000) < 0.2, \
        "the caller's tone leaked into the agent channel"
