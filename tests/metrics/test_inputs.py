"""Opening label maps and probabilities for evaluate: box windows and foreground views are lazy views."""

from __future__ import annotations

import numpy as np
import pytest

from slicewise.data.io.lazy import LazyView
from slicewise.errors import InputError
from slicewise.metrics.inputs import ArrayForeground, Window, open_pair

BOX = (slice(1, 3), slice(2, 6), slice(0, 5))


def test_window_reads_its_box_with_any_basic_key():
    a = np.arange(4 * 7 * 5).reshape(4, 7, 5)
    w = Window(a, BOX)
    inner = a[BOX]
    assert isinstance(w, LazyView) and w.shape == inner.shape and w.dtype == a.dtype
    for key in (np.s_[...], np.s_[1], np.s_[:, 1:3], np.s_[..., ::-2], np.s_[0, -1, 2], np.s_[[1, 0]]):
        assert np.array_equal(w[key], inner[key]), key
    assert np.array_equal(np.asarray(w), inner)


def test_array_foreground_is_one_minus_background_in_box_coordinates():
    rng = np.random.default_rng(0)
    fg = rng.random((4, 7, 5)).astype(np.float32)
    shape = fg.shape
    for prob, want in ((fg, fg), (np.stack([1 - fg, fg]), 1 - (1 - fg)), (fg[None], fg)):
        view = ArrayForeground(prob, shape, BOX)
        assert view.shape == (2, 4, 5) and view.dtype == np.float32
        np.testing.assert_allclose(view[:, 1:, ::-1], want[BOX][:, 1:, ::-1], atol=1e-6)
    with pytest.raises(InputError, match="within"):
        ArrayForeground(fg * 3, shape, BOX)[...]


def test_open_pair_places_the_box_in_both_maps():
    gt = np.arange(4 * 7 * 5).reshape(4, 7, 5) % 3
    pair = open_pair(gt, gt, roi=BOX)
    assert pair.box == BOX and pair.pred_box == BOX and pair.offset == (0, 0, 0)
    assert np.array_equal(pair.pred[...], gt[BOX]) and np.array_equal(pair.gt[...], gt[BOX])
    mapped = open_pair(gt, gt, label_map={0: 1, 1: 0, 2: 2})
    assert np.array_equal(mapped.gt[...], np.choose(gt, [1, 0, 2]))
