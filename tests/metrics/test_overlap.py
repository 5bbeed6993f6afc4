"""Per-class Dice / IoU: hand values, empty-vs-empty = 1, symmetry, class-permutation invariance."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from slicewise.metrics import dice, foreground_dice, iou


@st.composite
def semantic_pair(draw):
    shape = draw(hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=6))
    elems = st.integers(0, 3)
    return draw(hnp.arrays(np.uint8, shape, elements=elems)), draw(hnp.arrays(np.uint8, shape, elements=elems))


def test_hand_values():
    gt = np.array([[1, 1, 1, 1], [0, 0, 0, 0]])
    pred = np.array([[1, 1, 0, 0], [1, 0, 0, 0]])
    # class 1: |P∩G| = 2, |P| = 3, |G| = 4; class 0: |P∩G| = 3, |P| = 5, |G| = 4
    assert dice(pred, gt) == {0: pytest.approx(6 / 9), 1: pytest.approx(4 / 7)}
    assert iou(pred, gt) == {0: pytest.approx(3 / 6), 1: pytest.approx(2 / 5)}
    assert foreground_dice(pred, gt) == pytest.approx(4 / 7)


def test_empty_vs_empty_is_one_and_missing_class_is_zero():
    gt = np.zeros((2, 2), np.int32)
    pred = np.array([[0, 0], [0, 2]])
    d = dice(pred, gt, classes=[0, 1, 2])
    assert d[1] == 1.0 and d[2] == 0.0
    assert iou(pred, gt, classes=[1])[1] == 1.0
    assert foreground_dice(gt, gt) == 1.0


@settings(max_examples=60, deadline=None)
@given(semantic_pair())
def test_symmetric_and_consistent(pair):
    pred, gt = pair
    d, d2 = dice(pred, gt), dice(gt, pred)
    j = iou(pred, gt)
    assert d == pytest.approx(d2) and j == pytest.approx(iou(gt, pred))
    assert foreground_dice(pred, gt) == pytest.approx(foreground_dice(gt, pred))
    for c in d:  # Dice = 2 IoU / (1 + IoU) for every class
        assert d[c] == pytest.approx(2 * j[c] / (1 + j[c]))
        ref = 2 * np.count_nonzero((pred == c) & (gt == c)) / (np.count_nonzero(pred == c) + np.count_nonzero(gt == c))
        assert d[c] == pytest.approx(ref)


@settings(max_examples=40, deadline=None)
@given(semantic_pair(), st.permutations(range(4)))
def test_class_permutation_moves_scores_with_classes(pair, perm):
    pred, gt = pair
    perm = np.array(perm, np.uint8)
    d, d2 = dice(pred, gt), dice(perm[pred], perm[gt])
    assert {int(perm[c]): v for c, v in d.items()} == pytest.approx(d2)
