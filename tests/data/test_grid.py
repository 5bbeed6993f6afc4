"""THE block grid: boxes tile the extent exactly once, in C order, clipped at the end, shifted by the origin."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from slicewise.data.grid import block_grid

sizes = st.tuples(st.integers(1, 12), st.integers(1, 12), st.integers(1, 12))


@settings(max_examples=80, deadline=None)
@given(shape=sizes, block=sizes, origin=st.tuples(st.integers(0, 5), st.integers(0, 5), st.integers(0, 5)))
def test_boxes_cover_the_extent_once_in_c_order(shape, block, origin):
    boxes = block_grid(shape, block, origin)
    cover = np.zeros([o + n for o, n in zip(origin, shape)], np.int32)
    for box in boxes:
        assert all(0 < s.stop - s.start <= b for s, b in zip(box, block))
        cover[box] += 1
    inside = tuple(slice(o, o + n) for o, n in zip(origin, shape))
    assert (cover[inside] == 1).all() and cover.sum() == int(np.prod(shape))
    starts = [tuple(s.start for s in box) for box in boxes]
    assert starts == sorted(starts)
    assert len(boxes) == int(np.prod([-(-n // b) for n, b in zip(shape, block)]))


def test_box_i_is_chunk_i_of_an_array_chunked_by_the_block():
    boxes = block_grid((5, 7, 4), (2, 3, 4))
    assert boxes[0] == (slice(0, 2), slice(0, 3), slice(0, 4))
    assert boxes[2] == (slice(0, 2), slice(6, 7), slice(0, 4))
    assert boxes[-1] == (slice(4, 5), slice(6, 7), slice(0, 4))
