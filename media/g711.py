"""G.711 μ-law and A-law (ITU-T G.711) by numpy lookup tables.

Encoding indexes a 65,536-entry table with the uint16 view of the int16 samples; decoding indexes a
256-entry int16 table. The tables are built once at import with the classic segment algorithm (the one
CCITT's reference code and CPython's old `audioop` use), so results are bit-exact with `audioop`.
"""

from __future__ import annotations

import numpy as np

_ALL_INT16 = np.arange(
    -32768, 32768, dtype=np.int32
)  # index i ↔ int16 value with uint16 view i (reordered below)
_SEG_ULAW_END = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], np.int32)
_SEG_ALAW_END = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF], np.int32)


def _by_uint16_view(values_for_all_int16: np.ndarray) -> np.ndarray:
    """Reorder a table indexed by (int16 value + 32768) so it is indexed by the value's uint16 bit pattern."""
    return np.roll(values_for_all_int16, 32768)


def _build_ulaw_encode() -> np.ndarray:
    pcm = _ALL_INT16 >> 2  # 14-bit
    neg = pcm < 0
    mag = np.minimum(np.where(neg, -pcm, pcm), 8159) + 33
    seg = np.searchsorted(_SEG_ULAW_END, mag)  # first segment whose end >= mag
    code = np.where(seg >= 8, 0x7F, (np.minimum(seg, 7) << 4) | ((mag >> (np.minimum(seg, 7) + 1)) & 0xF))
    mask = np.where(neg, 0x7F, 0xFF)
    return _by_uint16_view((code ^ mask).astype(np.uint8))


def _build_alaw_encode() -> np.ndarray:
    pcm = _ALL_INT16 >> 3  # 13-bit
    neg = pcm < 0
    mag = np.where(neg, -pcm - 1, pcm)
    seg = np.searchsorted(_SEG_ALAW_END, mag)
    quant = np.where(seg < 2, mag >> 1, mag >> np.maximum(seg, 1)) & 0xF
    code = np.where(seg >= 8, 0x7F, (np.minimum(seg, 7) << 4) | quant)
    mask = np.where(neg, 0x55, 0xD5)
    return _by_uint16_view((code ^ mask).astype(np.uint8))


def _build_ulaw_decode() -> np.ndarray:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, 0x84 - t, t - 0x84).astype(np.int16)


def _build_alaw_decode() -> np.ndarray:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    t = np.where(seg == 0, t + 8, np.where(seg == 1, t + 0x108, (t + 0x108) << np.maximum(seg - 1, 0)))
    return np.where(a & 0x80, t, -t).astype(np.int16)


ULAW_ENCODE: np.ndarray = _build_ulaw_encode()  # uint8[65536], index = int16 sample viewed as uint16
ALAW_ENCODE: np.ndarray = _build_alaw_encode()
ULAW_DECODE: np.ndarray = _build_ulaw_decode()  # int16[256], index = code byte
ALAW_DECODE: np.ndarray = _build_alaw_decode()
for _t in (ULAW_ENCODE, ALAW_ENCODE, ULAW_DECODE, ALAW_DECODE):
    _t.setflags(write=False)

# RTP static payload types (RFC 3551)
PT_PCMU = 0
PT_PCMA = 8


def _as_int16(pcm: np.ndarray) -> np.ndarray:
    if pcm.dtype != np.int16:
        raise TypeError(f"G.711 encodes int16 PCM, got {pcm.dtype}")
    return pcm


def ulaw_encode(pcm: np.ndarray) -> np.ndarray:
    """int16 PCM → μ-law code bytes (uint8 array)."""
    return ULAW_ENCODE[_as_int16(pcm).view(np.uint16)]


def alaw_encode(pcm: np.ndarray) -> np.ndarray:
    """int16 PCM → A-law code bytes (uint8 array)."""
    return ALAW_ENCODE[_as_int16(pcm).view(np.uint16)]


def ulaw_decode(codes: bytes | np.ndarray) -> np.ndarray:
    """μ-law code bytes → int16 PCM."""
    return ULAW_DECODE[
        np.frombuffer(codes, np.uint8) if isinstance(codes, bytes | bytearray | memoryview) else codes
    ]


def alaw_decode(codes: bytes | np.ndarray) -> np.ndarray:
    """A-law code bytes → int16 PCM."""
    return ALAW_DECODE[
        np.frombuffer(codes, np.uint8) if isinstance(codes, bytes | bytearray | memoryview) else codes
    ]


class G711Codec:
    """A codec object for one law: `encode(int16) -> bytes`, `decode(bytes) -> int16`, 8 kHz, 1 byte/sample."""

    sample_rate = 8000

    def __init__(self, law: str) -> None:
        if law in ("ulaw", "pcmu", "PCMU"):
            self.law, self.payload_type = "ulaw", PT_PCMU
            self._enc, self._dec = ULAW_ENCODE, ULAW_DECODE
        elif law in ("alaw", "pcma", "PCMA"):
            self.law, self.payload_type = "alaw", PT_PCMA
            self._enc, self._dec = ALAW_ENCODE, ALAW_DECODE
        else:
            raise ValueError(f"unknown G.711 law {law!r}")
        self.silence_byte = int(self._enc[0])

    def encode(self, pcm: np.ndarray) -> bytes:
        return self._enc[_as_int16(pcm).view(np.uint16)].tobytes()

    def decode(self, payload: bytes) -> np.ndarray:
        return self._dec[np.frombuffer(payload, np.uint8)]
