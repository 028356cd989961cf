import numpy as np
import pytest

from media.jitter import JitterBuffer, conceal
from media.rtp import RtpPacket, seq_diff, ts_diff
from media.rtpstats import RtpStreamStats

PTIME = 0.02


def pkt(i: int, seq0: int = 0, ts0: int = 0) -> RtpPacket:
    return RtpPacket((seq0 + i) & 0xFFFF, (ts0 + 160 * i) & 0xFFFFFFFF, bytes([i & 0xFF]) * 160)


def run(jb: JitterBuffer, arrivals: list[tuple[int, float]], seq0: int = 0, ts0: int = 0, until: float = 0.0):
    """Feed (packet index, arrival time) pairs in the given order; poll every 20 ms as a tick would."""
    out = []
    events = sorted((t, n, i) for n, (i, t) in enumerate(arrivals))
    tick = 0.0
    for t, _, i in events:
        while tick + PTIME <= t:
            tick += PTIME
            out += jb.poll(tick)
        out += jb.add(pkt(i, seq0, ts0), t)
    while tick < max(until, events[-1][0] + 1.0):
        tick += PTIME
        out += jb.poll(tick)
    return out


def test_in_order_stream_plays_everything_after_the_latency():
    jb = JitterBuffer(latency=0.06)
    out = run(jb, [(i, i * PTIME + 0.001) for i in range(50)])
    assert [f.sequence_number for f in out] == list(range(50))
    assert all(not f.concealed and f.samples == 160 for f in out)
    c = jb.counters
    assert (c.played, c.lost, c.late, c.reordered, c.duplicate) == (50, 0, 0, 0, 0)
    assert jb.add(pkt(50), 50 * PTIME + 0.001) == []  # held for the latency, not played at once
    assert [f.sequence_number for f in jb.poll(50 * PTIME + 0.062)] == [50]


def test_reordered_packets_come_out_in_order():
    order = [0, 1, 3, 2, 4, 6, 5, 7, 8, 9]
    jb = JitterBuffer(latency=0.06)
    out = run(jb, [(i, n * PTIME) for n, i in enumerate(order)])
    assert [f.sequence_number for f in out] == list(range(10))
    assert jb.counters.reordered == 2 and jb.counters.lost == 0 and jb.counters.late == 0


def test_lost_packets_are_concealed_in_place():
    jb = JitterBuffer(latency=0.04)
    out = run(jb, [(i, i * PTIME) for i in range(20) if i not in (5, 11, 12)])
    assert [f.sequence_number for f in out] == list(range(20))
    assert [f.sequence_number for f in out if f.concealed] == [5, 11, 12]
    assert [f.timestamp for f in out if f.concealed] == [800, 1760, 1920]
    assert jb.counters.lost == 3 and jb.counters.played == 17


def test_too_late_packet_is_dropped_and_counted():
    jb = JitterBuffer(latency=0.04)
    arrivals = [(i, i * PTIME) for i in range(20) if i != 7] + [(7, 7 * PTIME + 0.2)]
    out = run(jb, arrivals)
    assert [f.sequence_number for f in out] == list(range(20))
    assert out[7].concealed
    c = jb.counters
    assert (c.lost, c.late, c.played) == (1, 1, 19)


def test_duplicates_are_dropped_and_counted():
    jb = JitterBuffer(latency=0.06)
    arrivals = [(i, i * PTIME) for i in range(10)] + [(3, 3 * PTIME + 0.005), (8, 8 * PTIME + 0.3)]
    out = run(jb, arrivals)
    assert [f.sequence_number for f in out] == list(range(10))
    assert jb.counters.duplicate == 2 and jb.counters.late == 0


@pytest.mark.parametrize("seq0,ts0", [(65530, 0), (100, 0xFFFFFF00), (65535, 0xFFFFFFFF - 500)])
def test_wrap_around_of_sequence_and_timestamp(seq0, ts0):
    jb = JitterBuffer(latency=0.06)
    order = [0, 1, 2, 4, 3, 5, 6, 8, 9, 10, 11]  # 7 lost, 3/4 swapped, across the wrap
    out = run(jb, [(i, n * PTIME) for n, i in enumerate(order)], seq0, ts0)
    expected = [(seq0 + i) & 0xFFFF for i in range(12)]
    assert [f.sequence_number for f in out] == expected
    assert [f.concealed for f in out].count(True) == 1 and out[7].concealed
    assert out[7].timestamp == (ts0 + 7 * 160) & 0xFFFFFFFF
    assert jb.counters.reordered == 1 and jb.counters.late == 0 and jb.counters.resyncs == 0


def test_network_jitter_is_absorbed_and_measured():
    rng = np.random.default_rng(1)
    jitter = rng.uniform(0, 0.03, 500)  # up to 30 ms of delay variation, latency 60 ms
    jb = JitterBuffer(latency=0.06)
    out = run(jb, [(i, i * PTIME + 0.05 + jitter[i]) for i in range(500)])
    assert [f.sequence_number for f in out] == list(range(500))
    assert jb.counters.lost == 0 and jb.counters.late == 0
    assert jb.counters.reordered > 0
    # RFC 3550 J for uniform delay variation on [0, a]: E|D| = a/3 → J ≈ 10 ms here
    assert 7.0 < jb.interarrival_jitter_ms < 13.0


def test_stream_pause_does_not_invent_frames_and_resync_on_big_jump():
    jb = JitterBuffer(latency=0.04)
    out = run(jb, [(i, i * PTIME) for i in range(5)], until=2.0)
    assert len(out) == 5 and jb.counters.lost == 0  # silence after the last packet: nothing invented
    out = jb.add(pkt(5000), 3.0) + jb.poll(3.1)
    assert [f.sequence_number for f in out] == [5000]
    assert jb.counters.resyncs == 1 and jb.counters.lost == 0


def test_overflow_drops_oldest():
    jb = JitterBuffer(latency=10.0, capacity=8)
    for i in range(12):
        jb.add(pkt(i), i * 0.001)
    assert len(jb) == 8 and jb.counters.overflow == 4
    out = jb.poll(100.0)
    assert [f.sequence_number for f in out] == list(range(4, 12))


def test_conceal_fades_out():
    last = np.full(160, 1000, np.int16)
    assert np.all(conceal(last, 160, 1) == 500)
    assert np.all(conceal(last, 160, 2) == 250)
    assert not conceal(last, 160, 3).any()
    assert not conceal(None, 160, 1).any()


def test_wrap_helpers():
    assert seq_diff(2, 65534) == 4 and seq_diff(65534, 2) == -4
    assert ts_diff(10, 0xFFFFFFF0) == 26 and ts_diff(0xFFFFFFF0, 10) == -26


def test_rtp_stats_loss_and_jitter_rfc3550():
    s = RtpStreamStats(8000)
    for i in range(100):
        if i % 10 == 3:
            continue
        seq = (65500 + i) & 0xFFFF  # crosses the wrap
        s.update(seq, 160 * i, i * PTIME)
    r = s.report()
    assert (r.expected, r.received, r.lost) == (100, 90, 10)
    assert r.fraction_lost == pytest.approx(0.1)
    assert r.jitter_ms == pytest.approx(0.0)
    assert s.extended_max_seq == 65500 + 99
    assert s.report().fraction_lost == 0.0  # no new loss since the last report


def test_rtp_packet_roundtrip_and_errors():
    p = RtpPacket(65535, 0xDEADBEEF, b"\xff" * 160, payload_type=8, ssrc=0x12345678, marker=True, csrc=(7,))
    raw = bytes(p)
    assert raw[:2] == b"\x81\x88" and len(raw) == 12 + 4 + 160
    assert RtpPacket.parse(raw) == p
    # header extension and padding are skipped
    ext = (
        bytes([0x90 | 0x20]) + raw[1:12] + b"\xbe\xde\x00\x01" + b"\x01\x02\x03\x04" + b"ab" + b"\x00\x00\x03"
    )
    q = RtpPacket.parse(ext)
    assert q.payload == b"ab" and q.sequence_number == 65535
    for bad in (b"\x80" * 5, b"\x40" + raw[1:], raw[:13], bytes([0xA0]) + raw[1:12] + b"\x09"):
        with pytest.raises(ValueError):
            RtpPacket.parse(bad)
