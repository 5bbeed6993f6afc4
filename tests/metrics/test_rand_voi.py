"""Adapted Rand error and VOI: equal to skimage.metrics, correctly named, label-permutation invariant."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from skimage.metrics import adapted_rand_error, variation_of_information

from slicewise.metrics import adapted_rand, voi


@st.composite
def label_pair(draw, max_label: int = 5):
    shape = draw(hnp.array_shapes(min_dims=2, max_dims=3, min_side=2, max_side=7))
    elems = st.integers(0, max_label)
    return draw(hnp.arrays(np.int64, shape, elements=elems)), draw(hnp.arrays(np.int64, shape, elements=elems))


@st.composite
def relabelling(draw, labels: np.ndarray, keep_zero: bool) -> np.ndarray:
    """``labels`` with ids mapped one-to-one onto random new ids (0 kept when ``keep_zero``)."""
    ids = np.unique(labels)
    new = np.array(draw(st.lists(st.integers(1, 10**6), min_size=ids.size, max_size=ids.size, unique=True)))
    if keep_zero:
        new = np.where(ids == 0, 0, new)
    return new[np.searchsorted(ids, labels)]


def skimage_are(gt, pred, ignore):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return adapted_rand_error(gt, pred, ignore_labels=ignore)


@settings(max_examples=80, deadline=None)
@given(label_pair())
def test_are_equals_skimage_and_names_are_swapped_back(pair):
    pred, gt = pair
    are_ref, sk_prec, sk_rec = skimage_are(gt, pred, (0,))
    assume(np.isfinite(are_ref) and np.isfinite(sk_prec) and np.isfinite(sk_rec))
    ours = adapted_rand(pred, gt)
    assert ours["are"] == pytest.approx(are_ref, abs=1e-9)
    # skimage names them swapped: its "precision" is normalized by ground-truth pairs, i.e. the recall.
    assert ours["rand_recall"] == pytest.approx(sk_prec, abs=1e-9)
    assert ours["rand_precision"] == pytest.approx(sk_rec, abs=1e-9)
    assert ours["rand_f"] == pytest.approx(1 - are_ref, abs=1e-9)


@settings(max_examples=80, deadline=None)
@given(label_pair(), st.booleans())
def test_voi_equals_skimage(pair, ignore_zero):
    pred, gt = pair
    assume((gt != 0).any() or not ignore_zero)
    split_ref, merge_ref = variation_of_information(gt, pred, ignore_labels=(0,) if ignore_zero else ())
    ours = voi(pred, gt, ignore_gt_zero=ignore_zero)
    assert ours["voi_split"] == pytest.approx(split_ref, abs=1e-9)
    assert ours["voi_merge"] == pytest.approx(merge_ref, abs=1e-9)
    assert ours["voi"] == pytest.approx(split_ref + merge_ref, abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(label_pair().flatmap(lambda pq: st.tuples(st.just(pq), relabelling(pq[0], False), relabelling(pq[1], True))))
def test_invariant_to_label_permutation(args):
    (pred, gt), pred2, gt2 = args
    a, b = adapted_rand(pred, gt), adapted_rand(pred2, gt2)
    v, w = voi(pred, gt), voi(pred2, gt2)
    for k in a:
        assert a[k] == pytest.approx(b[k], abs=1e-12)
    for k in v:
        assert v[k] == pytest.approx(w[k], abs=1e-12)


def test_only_splits_lower_recall_only_merges_lower_precision():
    gt = np.repeat(np.array([1, 1, 1, 1, 2, 2, 2, 2]), 3).reshape(4, 6)
    split = gt * 10 + (np.arange(gt.size).reshape(gt.shape) % 2)  # each object cut in two
    s = adapted_rand(split, gt)
    assert s["rand_precision"] == pytest.approx(1.0) and s["rand_recall"] < 1.0
    v = voi(split, gt)
    assert v["voi_split"] > 0 and v["voi_merge"] == pytest.approx(0.0, abs=1e-12)
    merged = np.ones_like(gt)  # both objects joined
    m = adapted_rand(merged, gt)
    assert m["rand_recall"] == pytest.approx(1.0) and m["rand_precision"] < 1.0
    v = voi(merged, gt)
    assert v["voi_merge"] == pytest.approx(1.0) and v["voi_split"] == pytest.approx(
        0.0, abs=1e-12
    )  # 1 bit: two equal halves


def test_gt_zero_ignored_pred_zero_ordinary():
    gt = np.array([[0, 0, 1, 1], [0, 0, 1, 1]])
    pred = np.array([[5, 6, 0, 0], [7, 8, 0, 0]])  # background differs, object predicted as label 0
    assert adapted_rand(pred, gt)["are"] == pytest.approx(0.0)
    assert voi(pred, gt)["voi"] == pytest.approx(0.0)
    assert voi(pred, gt, ignore_gt_zero=False)["voi_split"] > 0


def test_degenerate_conventions():
    gt = np.zeros((3, 3), np.int64)
    pred = np.arange(9).reshape(3, 3)
    assert adapted_rand(pred, gt) == {"are": 0.0, "rand_f": 1.0, "rand_precision": 1.0, "rand_recall": 1.0}
    assert voi(pred, gt) == {"voi_split": 0.0, "voi_merge": 0.0, "voi": 0.0}
    singletons = adapted_rand(pred, pred + 1)  # every voxel its own segment in both maps
    assert singletons["are"] == 0.0
