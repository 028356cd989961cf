import numpy as np
import pytest

from media.frames import AudioFrame, float_to_int16, int16_to_float, samples_per_frame


def test_frame_sizes():
    assert samples_per_frame(8000) == 160
    assert samples_per_frame(16000) == 320
    assert samples_per_frame(22050) == 441
    with pytest.raises(ValueError):
        samples_per_frame(11025)


def test_audio_frame_validates_and_roundtrips_bytes():
    f = AudioFrame(np.array([1, -2, 32767, -32768], np.int16), 8000, pts=160)
    assert f.duration == pytest.approx(0.0005) and len(f) == 4
    g = AudioFrame.from_bytes(f.to_bytes(), 8000, pts=160)
    np.testing.assert_array_equal(g.samples, f.samples)
    assert f.to_bytes() == b"\x01\x00\xfe\xff\xff\x7f\x00\x80"
    assert not AudioFrame.silence(16000).samples.any() and len(AudioFrame.silence(16000)) == 320
    with pytest.raises(ValueError):
        AudioFrame(np.zeros(4, np.float32), 8000)
    with pytest.raises(ValueError):
        AudioFrame(np.zeros(4, np.int16), 0)
    with pytest.raises(ValueError):
        AudioFrame.from_bytes(b"\x00", 8000)


def test_float_conversion_clips_and_rounds():
    np.testing.assert_array_equal(
        float_to_int16(np.array([-2.0, -1.0, 0.0, 0.5, 1.0])), [-32768, -32768, 0, 16384, 32767]
    )
    assert int16_to_float(np.array([-32768], np.int16))[0] == -1.0


def test_pcm16_decoder_keeps_samples_split_between_chunks():
    from media.frames import Pcm16Decoder

    samples = np.array([1, -2, 300, -32768, 32767], np.int16)
    raw = samples.astype("<i2").tobytes()
    decoder = Pcm16Decoder()
    parts = [decoder.decode(raw[i:i + 3]) for i in range(0, len(raw), 3)]  # odd-sized chunks
    np.testing.assert_array_equal(np.concatenate(parts), samples)
    assert decoder.decode(b"").size == 0
