import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from slicewise.data.tiling import (
    effective_tile,
    gaussian_weight,
    iter_tiles,
    reflect_index,
    tile_starts,
    weight_sum,
)


@settings(max_examples=200, deadline=None)
@given(size=st.integers(1, 300), tile=st.integers(1, 64), overlap=st.floats(0.0, 0.9))
def test_tile_starts_cover_the_axis_with_the_last_tile_flush(size, tile, overlap):
    starts = tile_starts(size, tile, overlap)
    assert starts[0] == 0 and starts == sorted(set(starts))
    covered = np.zeros(max(size, tile), bool)
    for s in starts:
        covered[s : s + tile] = True
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


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 20), extra=st.integers(0, 60))
def test_reflect_index_pads_like_numpy_reflect_even_beyond_the_axis(n, extra):
    a = np.arange(n)
    idx = reflect_index(n, n + extra).numpy()
    np.testing.assert_array_equal(a[idx], np.pad(a, (0, extra), mode="reflect" if n > 1 else "edge"))


def test_effective_tile_shrinks_to_a_covering_multiple_of_the_divisor():
    assert effective_tile(40, 256, 32) == 64
    assert effective_tile(300, 256, 32) == 256
    assert effective_tile(5, 16, 8) == 8
