"""THE connected-components function: block-wise labels equal ``scipy.ndimage.label`` of the whole mask."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi

from slicewise.data.components import filter_table, label, label_blocks, relabel_blocks, structure_for
from slicewise.data.grid import block_grid
from slicewise.errors import InputError


def _size_filtered(ref: np.ndarray, min_size: int) -> np.ndarray:
    """``ref`` without objects under ``min_size`` voxels, renumbered 1…N in the order kept."""
    counts = np.bincount(ref.ravel())
    keep = counts >= max(min_size, 1)
    keep[0] = False
    new = np.zeros(counts.size, np.int64)
    new[keep] = np.arange(1, int(keep.sum()) + 1)
    return new[ref]


@settings(max_examples=60, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 7), st.integers(1, 9), st.integers(1, 9)),
    block=st.tuples(st.integers(1, 5), st.integers(1, 5), st.integers(1, 5)),
    connectivity=st.integers(1, 3),
    per_slice=st.booleans(),
    density=st.floats(0.05, 0.8),
    min_size=st.integers(0, 4),
    seed=st.integers(0, 10_000),
)
def test_label_equals_ndimage_label_id_for_id(shape, block, connectivity, per_slice, density, min_size, seed):
    mask = np.random.default_rng(seed).random(shape) < density
    ref = ndi.label(mask, structure_for(connectivity, per_slice))[0]
    got = label(mask, block, connectivity=connectivity, per_slice=per_slice, min_size=min_size)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, _size_filtered(ref, min_size))


def test_per_slice_ids_are_unique_over_the_volume_slice_by_slice():
    mask = np.zeros((3, 6, 6), bool)
    mask[:, 1:3, 1:3] = mask[:, 4:6, 4:6] = True
    got = label(mask, (1, 4, 4), per_slice=True)
    assert [sorted(set(np.unique(s)) - {0}) for s in got] == [[1, 2], [3, 4], [5, 6]]


def test_label_blocks_uses_the_block_grid_and_reports_sizes_and_first_voxels():
    mask = np.zeros((4, 8, 8), bool)
    mask[1:3, 2:7, 2:4] = True  # crosses the y and x block faces
    mask[3, 0, 0] = True
    shape, block = mask.shape, (2, 3, 3)
    seen = []

    def mask_fn(box):
        seen.append(box)
        return mask[box]

    prov = np.zeros(shape, np.int64)
    table, comps = label_blocks(mask_fn, shape, block, prov)
    assert seen == block_grid(shape, block)
    assert comps.n == 2 and list(comps.sizes) == [20, 1]
    assert list(comps.first_z()) == [1, 3]
    out = np.zeros(shape, np.int32)
    relabel_blocks(prov, table, out, shape, block)
    np.testing.assert_array_equal(out, ndi.label(mask)[0])
    table, comps = filter_table(table, comps, 2)
    assert comps.n == 1 and int(table.max()) == 1


def test_refusals_are_one_line():
    with pytest.raises(InputError, match="connectivity 4"):
        structure_for(4)
    with pytest.raises(InputError, match="do not fit int8"):
        relabel_blocks(
            np.zeros((1, 1, 1), np.int64), np.arange(300), np.zeros((1, 1, 1)), (1, 1, 1), (1, 1, 1), np.int8
        )
