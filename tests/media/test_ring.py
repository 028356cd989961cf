import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media.ring import AudioRing


def ramp(start: int, n: int) -> np.ndarray:
    return (np.arange(start, start + n) % 30000).astype(np.int16)


def test_fifo_order_across_wrap():
    r = AudioRing(10)
    r.write(ramp(0, 7))
    np.testing.assert_array_equal(r.read(5), ramp(0, 5))
    r.write(ramp(7, 6))  # wraps around the end of the storage
    assert r.available == 8 and r.free == 2
    np.testing.assert_array_equal(r.peek(8), ramp(5, 8))
    np.testing.assert_array_equal(r.read(100), ramp(5, 8))
    assert r.available == 0 and r.dropped == 0


def test_overflow_drops_oldest_and_counts():
    r = AudioRing(10)
    r.write(ramp(0, 8))
    assert r.write(ramp(8, 5)) == 3
    assert r.dropped == 3
    np.testing.assert_array_equal(r.read(10), ramp(3, 10))
    # one write bigger than the whole ring keeps only the newest samples
    r.write(ramp(0, 4))
    assert r.write(ramp(100, 25)) == 4 + 15
    assert r.dropped == 3 + 19
    np.testing.assert_array_equal(r.read(10), ramp(115, 10))


def test_clear_skip_and_padded_read():
    r = AudioRing(16)
    r.write(ramp(0, 12))
    assert r.skip(2) == 2
    assert r.clear() == 10
    assert r.available == 0 and r.dropped == 0
    r.write(ramp(50, 3))
    out = r.read_padded(5)
    np.testing.assert_array_equal(out, np.array([50, 51, 52, 0, 0], np.int16))
    assert r.underruns == 1
    r.write(ramp(0, 5))
    r.read_padded(5)
    assert r.underruns == 1


def test_read_into_preallocated_buffer():
    r = AudioRing(8)
    r.write(ramp(0, 6))
    r.read(4)
    r.write(ramp(6, 5))
    out = np.full(10, -1, np.int16)
    assert r.read_into(out) == 7
    np.testing.assert_array_equal(out[:7], ramp(4, 7))
    assert out[7] == -1


def test_rejects_non_int16():
    with pytest.raises(TypeError):
        AudioRing(4).write(np.zeros(2, np.float32))
    with pytest.raises(ValueError):
        AudioRing(0)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 50), st.lists(st.tuples(st.booleans(), st.integers(0, 80)), max_size=40))
def test_matches_a_reference_model(capacity, ops):
    """Against a plain-list model: same contents, same drop count, whatever the interleaving."""
    r = AudioRing(capacity)
    model: list[int] = []
    dropped = 0
    counter = 0
    for is_write, n in ops:
        if is_write:
            data = ramp(counter, n)
            counter += n
            model.extend(data.tolist())
            excess = max(0, len(model) - capacity)
            dropped += excess
            del model[:excess]
            r.write(data)
        else:
            got = r.read(n)
            assert got.tolist() == model[:n]
            del model[:n]
        assert r.available == len(model)
    assert r.dropped == dropped
    assert r.peek(capacity).tolist() == model
