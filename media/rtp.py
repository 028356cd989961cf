"""RTP fixed header (RFC 3550 §5.1) as a dataclass, plus wrap-around arithmetic for 16/32-bit counters."""

from __future__ import annotations

import struct
from dataclasses import dataclass

_HEADER = struct.Struct("!BBHII")


def seq_diff(a: int, b: int) -> int:
    """Signed distance a - b between 16-bit sequence numbers, in [-32768, 32767] (wrap-around safe)."""
    return ((a - b + 0x8000) & 0xFFFF) - 0x8000


def ts_diff(a: int, b: int) -> int:
    """Signed distance a - b between 32-bit RTP timestamps (wrap-around safe)."""
    return ((a - b + 0x80000000) & 0xFFFFFFFF) - 0x80000000


@dataclass(frozen=True, slots=True)
class RtpPacket:
    sequence_number: int
    timestamp: int
    payload: bytes = b""
    payload_type: int = 0
    ssrc: int = 0
    marker: bool = False
    csrc: tuple[int, ...] = ()

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """Parse an RTP packet; header extensions are skipped, padding removed."""
        if len(data) < 12:
            raise ValueError(f"RTP packet too short ({len(data)} bytes)")
        b0, b1, seq, ts, ssrc = _HEADER.unpack_from(data)
        if b0 >> 6 != 2:
            raise ValueError(f"RTP version {b0 >> 6} is not 2")
        pos = 12 + 4 * (b0 & 0x0F)
        if len(data) < pos:
            raise ValueError("RTP packet truncated in the CSRC list")
        csrc = struct.unpack_from(f"!{b0 & 0x0F}I", data, 12)
        if b0 & 0x10:  # header extension
            if len(data) < pos + 4:
                raise ValueError("RTP packet truncated in the header extension")
            (words,) = struct.unpack_from("!H", data, pos + 2)
            pos += 4 + 4 * words
        end = len(data)
        if b0 & 0x20:  # padding
            pad = data[-1]
            if pad == 0 or pad > end - pos:
                raise ValueError("RTP padding length is invalid")
            end -= pad
        if end < pos:
            raise ValueError("RTP packet truncated")
        return cls(seq, ts, bytes(data[pos:end]), b1 & 0x7F, ssrc, bool(b1 & 0x80), csrc)

    def __bytes__(self) -> bytes:
        b0 = 0x80 | len(self.csrc)
        b1 = (0x80 if self.marker else 0) | (self.payload_type & 0x7F)
        head = _HEADER.pack(b0, b1, self.sequence_number & 0xFFFF, self.timestamp & 0xFFFFFFFF, self.ssrc)
        return head + b"".join(struct.pack("!I", c) for c in self.csrc) + self.payload
