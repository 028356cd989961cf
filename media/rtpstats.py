"""Receive statistics of one RTP stream (RFC 3550 §6.4.1, appendix A.1 and A.8).

`update()` takes the arrival time as an argument. Figures: packets received, extended highest sequence
number, expected, cumulative lost (expected − received, as the RFC defines it), fraction lost since the
last report, out-of-order arrivals and the interarrival jitter (in timestamp units and in ms).
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_DROPOUT = 3000
MAX_MISORDER = 100
SEQ_MOD = 1 << 16


@dataclass(frozen=True, slots=True)
class RtpStatsSnapshot:
    received: int
    expected: int
    lost: int
    fraction_lost: float
    out_of_order: int
    jitter_ms: float
    restarts: int


class RtpStreamStats:
    def __init__(self, clock_rate: int) -> None:
        self.clock_rate = clock_rate
        self.received = 0
        self.out_of_order = 0
        self.restarts = 0
        self.jitter = 0.0  # RFC 3550 J, in timestamp units
        self._base_seq = 0
        self._max_seq = 0
        self._cycles = 0
        self._bad_seq = SEQ_MOD + 1
        self._transit: float | None = None
        self._expected_prior = 0
        self._received_prior = 0

    def _init_seq(self, seq: int) -> None:
        self._base_seq = seq
        self._max_seq = seq
        self._cycles = 0
        self._bad_seq = SEQ_MOD + 1
        self.received = 0
        self._expected_prior = self._received_prior = 0

    @property
    def extended_max_seq(self) -> int:
        return self._cycles + self._max_seq

    @property
    def expected(self) -> int:
        return 0 if self.received == 0 else self.extended_max_seq - self._base_seq + 1

    @property
    def lost(self) -> int:
        return self.expected - self.received

    @property
    def jitter_ms(self) -> float:
        return 1000.0 * self.jitter / self.clock_rate

    def update(self, seq: int, timestamp: int, arrival_time: float) -> bool:
        """Account one packet. Returns False for a packet the RFC algorithm rejects (a huge sequence jump
        not yet confirmed by its successor); two such in a row restart the statistics (a new source)."""
        if self.received == 0 and self._transit is None:
            self._init_seq(seq)
        else:
            udelta = (seq - self._max_seq) & 0xFFFF
            if udelta < MAX_DROPOUT:
                if seq < self._max_seq:
                    self._cycles += SEQ_MOD
                self._max_seq = seq
            elif udelta <= SEQ_MOD - MAX_MISORDER:
                if seq != self._bad_seq:
                    self._bad_seq = (seq + 1) & 0xFFFF
                    return False
                self._init_seq(seq)  # two sequential packets after a jump: the source restarted
                self.restarts += 1
                self._transit = None
            else:
                self.out_of_order += 1
        self.received += 1
        transit = arrival_time * self.clock_rate - timestamp
        if self._transit is not None:
            d = transit - self._transit
            # the timestamp may have wrapped: fold d into the signed 32-bit range
            d = (d + 2**31) % 2**32 - 2**31
            self.jitter += (abs(d) - self.jitter) / 16.0
        self._transit = transit
        return True

    def report(self) -> RtpStatsSnapshot:
        """Figures since the start; fraction_lost covers the interval since the previous report()."""
        expected = self.expected
        exp_int = expected - self._expected_prior
        rec_int = self.received - self._received_prior
        self._expected_prior, self._received_prior = expected, self.received
        lost_int = exp_int - rec_int
        fraction = lost_int / exp_int if exp_int > 0 and lost_int > 0 else 0.0
        return RtpStatsSnapshot(
            self.received, expected, self.lost, fraction, self.out_of_order, self.jitter_ms, self.restarts
        )
