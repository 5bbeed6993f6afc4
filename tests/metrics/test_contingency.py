"""Sparse contingency table: exact counts against a dense reference, any dtype/shape, chunking."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from slicewise.errors import InputError
from slicewise.metrics import contingency_table


def dense_reference(pred: np.ndarray, gt: np.ndarray) -> dict[tuple[int, int], int]:
    pairs: dict[tuple[int, int], int] = {}
    for g, p in zip(gt.ravel().tolist(), pred.ravel().tolist()):
        pairs[(int(g), int(p))] = pairs.get((int(g), int(p)), 0) + 1
    return pairs


def table_pairs(table) -> dict[tuple[int, int], int]:
    rows, cols, counts = table.pairs()
    return {(int(table.gt_ids[r]), int(table.pred_ids[c])): int(n) for r, c, n in zip(rows, cols, counts) if n}


label_dtypes = st.sampled_from([np.uint8, np.int16, np.int32, np.uint32, np.int64])


@st.composite
def label_pair(draw, low: int = 0, high: int = 6):
    dtype = draw(label_dtypes)
    info = np.iinfo(dtype)
    lo, hi = max(low, int(info.min)), min(high, int(info.max))
    shape = draw(hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=6))
    elems = st.integers(lo, hi)
    return (draw(hnp.arrays(dtype, shape, elements=elems)), draw(hnp.arrays(dtype, shape, elements=elems)))


@settings(max_examples=60, deadline=None)
@given(label_pair(low=-3, high=7), st.integers(1, 50))
def test_counts_match_dense_reference(pair, chunk):
    pred, gt = pair
    table = contingency_table(pred, gt, chunk_voxels=chunk)
    assert table_pairs(table) == dense_reference(pred, gt)
    assert table.n_voxels == pred.size
    np.testing.assert_array_equal(table.gt_ids, np.unique(gt))
    np.testing.assert_array_equal(table.pred_ids, np.unique(pred))
    np.testing.assert_array_equal(table.gt_sizes, [np.count_nonzero(gt == g) for g in table.gt_ids])
    np.testing.assert_array_equal(table.pred_sizes, [np.count_nonzero(pred == p) for p in table.pred_ids])


def test_wide_label_range_and_bool():
    gt = np.array([[0, -(2**40), 2**40], [5, 5, 2**40]], dtype=np.int64)
    pred = np.array([[True, False, True], [True, True, False]])
    table = contingency_table(pred, gt)
    assert table_pairs(table) == dense_reference(pred.astype(np.int64), gt)


def test_without_gt_drops_voxels_and_recounts_pred_sizes():
    gt = np.array([0, 0, 1, 1, 2])
    pred = np.array([7, 8, 7, 7, 9])
    t = contingency_table(pred, gt).without_gt((0,))
    np.testing.assert_array_equal(t.gt_ids, [1, 2])
    np.testing.assert_array_equal(t.pred_ids, [7, 9])
    np.testing.assert_array_equal(t.pred_sizes, [2, 1])
    assert t.n_voxels == 3


def test_errors_are_one_line():
    with pytest.raises(InputError, match="dtype float"):
        contingency_table(np.zeros((2, 3), np.float32), np.zeros((2, 3), np.int32))
    with pytest.raises(InputError, match="shape") as err:
        contingency_table(np.zeros((2, 3), np.int32), np.zeros((3, 2), np.int32))
    assert "\n" not in str(err.value)
