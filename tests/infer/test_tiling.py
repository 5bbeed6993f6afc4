import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from slicewise.infer.tiling import (
    effective_tile, gaussian_weight, iter_batches, iter_tiles, pad_to_tile, tile_starts, weight_sum,
)


@settings(max_examples=200, deadline=None)
@given(size=st.integers(1, 300), tile=st.integers(1, 64), overlap=st.floats(0.0, 0.9))
def test_tile_starts_cover_the_axis_with_the_last_tile_flush(size, tile, overlap):
    starts = tile_starts(size, tile, overlap)
    assert starts[0] == 0 and starts == sorted(set(starts))
    covered = np.zeros(max(size, tile), bool)
    for s in starts:
        covered[s:s + tile] = True
    assert covered[:size].all()
    assert starts[-1] == max(0, size - tile)
    step = max(1, int(tile * (1 - overlap)))
    assert all(b - a <= step for a, b in zip(starts, starts[1:]))


def test_gaussian_weight_is_positive_peaked_and_symmetric():
    w = gaussian_weight((16, 24))
    assert w.shape == (16, 24) and w.dtype == np.float32
    assert w.min() >= 1e-3 and np.isclose(w.max(), 1.0)
    np.testing.assert_allclose(w, w[::-1, ::-1])
    assert w[8, 12] > w[0, 0] and w[8, 12] > w[8, 0]
    assert gaussian_weight(32, sigma_scale=0.05).min() == np.float32(1e-3)


def test_weight_sum_covers_every_pixel():
    ws = weight_sum((40, 52), (16, 16), 0.25)
    assert ws.shape == (40, 52) and ws.min() > 0
    n = sum(1 for _ in iter_tiles((40, 52), (16, 16), 0.25))
    assert n == len(tile_starts(40, 16, 0.25)) * len(tile_starts(52, 16, 0.25))


def test_pad_to_tile_reflects_and_crops_back():
    a = np.arange(2 * 5 * 7, dtype=np.float32).reshape(2, 5, 7)
    p = pad_to_tile(a, (8, 16))
    assert p.shape == (2, 8, 16)
    np.testing.assert_array_equal(p[:, :5, :7], a)
    np.testing.assert_array_equal(p, np.pad(a, ((0, 0), (0, 3), (0, 9)), mode="reflect"))
    assert pad_to_tile(a, (4, 4)) is a


def test_effective_tile_shrinks_to_a_covering_multiple_of_the_divisor():
    assert effective_tile(40, 256, 32) == 64
    assert effective_tile(300, 256, 32) == 256
    assert effective_tile(5, 16, 8) == 8


def test_batches_mix_planes_and_positions():
    batches = list(iter_batches(3, (20, 20), (16, 16), 0.25, 5))
    flat = [b for batch in batches for b in batch]
    assert len(flat) == 3 * 4 and all(len(b) <= 5 for b in batches)
    assert {i for i, _, _ in batches[0]} == {0, 1}
