import warnings

import numpy as np
import pytest

from media import g711

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # the reference only, never in product code (stdlib through 3.12; 3.13+: audioop-lts)

ALL_INT16 = np.arange(-32768, 32768, dtype=np.int16)
ALL_CODES = bytes(range(256))


@pytest.mark.parametrize(
    "encode,reference", [(g711.ulaw_encode, audioop.lin2ulaw), (g711.alaw_encode, audioop.lin2alaw)]
)
def test_encode_bit_exact_for_all_65536_inputs(encode, reference):
    got = encode(ALL_INT16)
    expected = np.frombuffer(reference(ALL_INT16.astype("<i2").tobytes(), 2), np.uint8)
    assert got.dtype == np.uint8
    mismatches = np.flatnonzero(got != expected)
    assert mismatches.size == 0, f"first mismatch at sample {ALL_INT16[mismatches[0]]}"


@pytest.mark.parametrize(
    "decode,reference", [(g711.ulaw_decode, audioop.ulaw2lin), (g711.alaw_decode, audioop.alaw2lin)]
)
def test_decode_bit_exact_for_all_256_codes(decode, reference):
    expected = np.frombuffer(reference(ALL_CODES, 2), "<i2")
    np.testing.assert_array_equal(decode(ALL_CODES), expected)
    np.testing.assert_array_equal(decode(np.frombuffer(ALL_CODES, np.uint8)), expected)


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_codec_roundtrip_is_idempotent_and_bounded(law):
    codec = g711.G711Codec(law)
    pcm = codec.decode(codec.encode(ALL_INT16))
    # decode(encode(decode(c))) == decode(c): the code book is a fixed point
    assert codec.encode(pcm) == codec.encode(ALL_INT16)
    np.testing.assert_array_equal(codec.decode(codec.encode(pcm)), pcm)
    # quantisation error is bounded by the largest segment step (μ-law 1024, A-law 1024 around full scale)
    err = np.abs(pcm.astype(np.int32) - ALL_INT16.astype(np.int32))
    assert err.max() <= 1024
    small = np.abs(ALL_INT16.astype(np.int32)) < 64
    assert err[small].max() <= 8  # fine steps near zero (μ-law 8, A-law 16)
    assert codec.decode(bytes([codec.silence_byte]))[0] in (0, 8, -8)


def test_codec_metadata_and_errors():
    assert g711.G711Codec("PCMU").payload_type == 0
    assert g711.G711Codec("pcma").payload_type == 8
    assert g711.G711Codec("ulaw").silence_byte == 0xFF
    assert g711.G711Codec("alaw").silence_byte == 0xD5
    with pytest.raises(ValueError):
        g711.G711Codec("g722")
    with pytest.raises(TypeError):
        g711.ulaw_encode(np.zeros(4, np.float32))


def test_tables_are_read_only():
    with pytest.raises(ValueError):
        g711.ULAW_ENCODE[0] = 1
