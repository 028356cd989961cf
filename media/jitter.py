"""Jitter / playout buffer for one network media stream (RTP-like packets).

A plain synchronous class in the aiortc/livekit mould: `add(packet, arrival_time)` returns the frames
whose playout time has come, in sequence order; `poll(now)` does the same when no packet arrives. The
playout time of a packet is the arrival time of the earliest-arriving packet of the stream (relative to its
timestamp) plus `latency`: a packet that shows up after its slot has been played is dropped and counted
`late`; a slot whose packet has not arrived when it is due is concealed and counted `lost`. Sequence
numbers (16 bit) and timestamps (32 bit) are unwrapped, so wrap-around is harmless.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from media.rtp import RtpPacket, seq_diff, ts_diff
from media.rtpstats import RtpStreamStats


@dataclass(frozen=True, slots=True)
class PlayoutFrame:
    """One slot of playout. `payload` is None for a concealed (lost) slot of `samples` samples."""

    sequence_number: int
    timestamp: int
    payload: bytes | None
    samples: int

    @property
    def concealed(self) -> bool:
        return self.payload is None


@dataclass(slots=True)
class JitterCounters:
    received: int = 0
    played: int = 0
    lost: int = 0  # slots concealed because their packet was missing when due
    late: int = 0  # packets that arrived after their slot was played (dropped)
    reordered: int = 0  # packets that arrived behind a newer one but still in time
    duplicate: int = 0
    overflow: int = 0  # packets dropped because the buffer was full
    resyncs: int = 0


class JitterBuffer:
    """Reorders and paces one stream. Times are seconds on any monotonic clock the caller chooses.

    clock_rate: RTP clock (8000 for G.711); frame_samples: samples per packet when it cannot be inferred;
    latency: fixed playout delay (seconds); capacity: packets held at most; max_gap: a sequence jump larger
    than this (in packets) resynchronises the buffer (new source, hold/resume).
    """

    def __init__(
        self,
        clock_rate: int = 8000,
        *,
        frame_samples: int = 160,
        latency: float = 0.06,
        capacity: int = 64,
        max_gap: int = 100,
    ) -> None:
        self.clock_rate = clock_rate
        self.frame_samples = frame_samples
        self.latency = latency
        self.capacity = capacity
        self.max_gap = max_gap
        self.counters = JitterCounters()
        self.stats = RtpStreamStats(clock_rate)
        self._packets: dict[int, tuple[int, RtpPacket]] = {}  # extended seq → (extended ts, packet)
        self._recent: set[int] = set()  # extended seqs received and already played (duplicate detection)
        self._started = False

    # -- unwrapping ------------------------------------------------------------------------------------
    def _reset(self, packet: RtpPacket, arrival_time: float) -> None:
        self._packets.clear()
        self._recent.clear()
        self._ref_seq = packet.sequence_number  # extended value of the reference = raw value
        self._ref_ts = packet.timestamp
        self._ext_ref_seq = packet.sequence_number
        self._ext_ref_ts = packet.timestamp
        self._next_seq = packet.sequence_number  # next extended seq to play
        self._next_ts = packet.timestamp
        self._highest_seq = packet.sequence_number - 1
        # playout time of a timestamp t (extended) = t / clock_rate + self._offset
        self._offset = arrival_time - packet.timestamp / self.clock_rate + self.latency
        self._bad_seq = -1
        self._started = True

    def _extend(self, packet: RtpPacket) -> tuple[int, int]:
        ext_seq = self._ext_ref_seq + seq_diff(packet.sequence_number, self._ref_seq)
        ext_ts = self._ext_ref_ts + ts_diff(packet.timestamp, self._ref_ts)
        if ext_seq > self._ext_ref_seq:  # move the unwrapping reference forward
            self._ref_seq, self._ext_ref_seq = packet.sequence_number, ext_seq
            self._ref_ts, self._ext_ref_ts = packet.timestamp, ext_ts
        return ext_seq, ext_ts

    # -- input -----------------------------------------------------------------------------------------
    def add(self, packet: RtpPacket, arrival_time: float) -> list[PlayoutFrame]:
        """Take one packet that arrived at `arrival_time`; returns the frames now due (maybe none)."""
        self.stats.update(packet.sequence_number, packet.timestamp, arrival_time)
        if not self._started:
            self._reset(packet, arrival_time)
        ext_seq, ext_ts = self._extend(packet)
        c = self.counters
        jump = ext_seq - self._next_seq
        if jump > self.max_gap or (jump < -self.max_gap and packet.sequence_number == self._bad_seq):
            # a long outage or a new source (a far backward jump is believed once two packets agree)
            c.resyncs += 1
            self._reset(packet, arrival_time)
            ext_seq, ext_ts = packet.sequence_number, packet.timestamp
        elif jump < -self.max_gap:
            self._bad_seq = (packet.sequence_number + 1) & 0xFFFF
            c.late += 1
            return self.poll(arrival_time)
        if ext_seq < self._next_seq:  # its slot is gone
            if ext_seq in self._recent:
                c.duplicate += 1
            else:
                c.late += 1
                self._recent.add(ext_seq)
            return self.poll(arrival_time)
        if ext_seq in self._packets:
            c.duplicate += 1
            return self.poll(arrival_time)
        c.received += 1
        if ext_seq < self._highest_seq:
            c.reordered += 1
        else:
            self._highest_seq = ext_seq
        # the earliest-arriving packet (relative to its timestamp) sets the playout clock: adapt downwards
        offset = arrival_time - ext_ts / self.clock_rate + self.latency
        if offset < self._offset:
            self._offset = offset
        self._packets[ext_seq] = (ext_ts, packet)
        if len(self._packets) > self.capacity:  # drop the oldest held packet, skipping its slot
            oldest = min(self._packets)
            del self._packets[oldest]
            c.overflow += 1
            if self._packets:  # skip playout forward to the oldest packet still held
                self._next_seq = min(self._packets)
                self._next_ts = self._packets[self._next_seq][0]
        return self.poll(arrival_time)

    # -- output ----------------------------------------------------------------------------------------
    def poll(self, now: float) -> list[PlayoutFrame]:
        """Frames whose playout time is <= now, in order; missing ones are concealed."""
        out: list[PlayoutFrame] = []
        if not self._started:
            return out
        c = self.counters
        while self._next_ts / self.clock_rate + self._offset <= now + 1e-9:
            entry = self._packets.pop(self._next_seq, None)
            if entry is not None:
                ts, pkt = entry
                nxt = self._packets.get(self._next_seq + 1)
                samples = (
                    ts_step
                    if nxt and 0 < (ts_step := nxt[0] - ts) <= 4 * self.frame_samples
                    else self.frame_samples
                )
                out.append(PlayoutFrame(pkt.sequence_number, pkt.timestamp, pkt.payload, samples))
                c.played += 1
                self._recent.add(self._next_seq)
            else:
                if not self._packets:
                    break  # nothing after the gap either: the stream paused (or ended) — wait, do not invent
                ts = self._next_ts
                samples = self.frame_samples
                out.append(PlayoutFrame(self._next_seq & 0xFFFF, ts & 0xFFFFFFFF, None, samples))
                c.lost += 1
            self._next_seq += 1
            nxt = self._packets.get(self._next_seq)
            self._next_ts = nxt[0] if nxt else ts + samples
            if len(self._recent) > 4 * self.capacity:
                floor = self._next_seq - 2 * self.capacity
                self._recent = {s for s in self._recent if s >= floor}
        return out

    def __len__(self) -> int:
        return len(self._packets)

    @property
    def interarrival_jitter_ms(self) -> float:
        """RFC 3550 interarrival jitter of the stream, ms."""
        return self.stats.jitter_ms


def conceal(last: np.ndarray | None, samples: int, run: int) -> np.ndarray:
    """Simple packet-loss concealment: repeat the last good frame at half level for the first lost frame,
    a quarter for the second, then silence. `run` counts consecutive concealed frames (1 for the first)."""
    if last is None or run > 2 or len(last) == 0:
        return np.zeros(samples, np.int16)
    reps = np.resize(last, samples)
    return (reps >> run).astype(np.int16)
