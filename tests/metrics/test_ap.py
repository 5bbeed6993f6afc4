"""Instance AP (COCO-style) and segmentation accuracy: hand cases, a literal COCO reference, invariances."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from slicewise.metrics import IOU_THRESHOLDS, average_precision, contingency_table, instance_scores, seg_accuracy


def boxes(shape, *specs):
    """Label map with label i+1 filling the slice tuple specs[i]."""
    out = np.zeros(shape, np.int32)
    for i, sl in enumerate(specs):
        out[sl] = i + 1
    return out


def test_perfect_prediction():
    gt = boxes((20, 20), np.s_[0:5, 0:5], np.s_[10:20, 10:20], np.s_[0:3, 15:20])
    pred = np.where(gt > 0, 10 - gt, 0)  # same objects, other ids
    r = average_precision(pred, gt)
    assert (r["ap"], r["ap50"], r["ap75"]) == (1.0, 1.0, 1.0)
    assert (r["n_pred"], r["n_gt"]) == (3, 3)
    assert seg_accuracy(pred, gt) == 1.0


def test_shift_between_half_and_three_quarters():
    gt = boxes((20, 20), np.s_[0:10, 0:10])
    pred = boxes((20, 20), np.s_[0:10, 2:12])  # IoU 80 / 120 = 2/3
    r = average_precision(pred, gt)
    assert r["ap50"] == 1.0 and r["ap75"] == 0.0
    assert r["ap"] == pytest.approx(4 / 10)  # passes t = 0.50, 0.55, 0.60, 0.65
    assert seg_accuracy(pred, gt, 0.5) == 1.0 and seg_accuracy(pred, gt, 0.75) == 0.0


def test_split_object_and_score_order():
    gt = boxes((2, 5), np.s_[:, :])
    pred = boxes((2, 5), np.s_[:, 0:3], np.s_[:, 3:5])  # IoU 0.6 (TP at 0.5) and 0.4 (FP)
    assert average_precision(pred, gt)["ap50"] == 1.0  # size scores rank the TP first
    prob = np.where(pred == 2, 0.9, 0.6)  # the FP fragment now ranks first
    assert average_precision(pred, gt, prob=prob)["ap50"] == pytest.approx(0.5)
    assert average_precision(pred, gt, prob=prob)["ap75"] == 0.0
    assert seg_accuracy(pred, gt) == pytest.approx(1 / 2)


def test_merged_objects():
    gt = boxes((2, 5), np.s_[:, 0:3], np.s_[:, 3:5])
    pred = boxes((2, 5), np.s_[:, :])  # IoU 0.6 with the larger object only: recall 1/2
    assert average_precision(pred, gt)["ap50"] == pytest.approx(51 / 101)  # recall points 0 … 0.50
    assert seg_accuracy(pred, gt) == pytest.approx(1 / 2)


def test_empty_cases():
    empty = np.zeros((4, 4), np.int32)
    some = boxes((4, 4), np.s_[0:2, 0:2])
    assert average_precision(empty, empty) == {"ap": 1.0, "ap50": 1.0, "ap75": 1.0, "n_pred": 0, "n_gt": 0}
    assert average_precision(some, empty)["ap"] == 0.0
    assert average_precision(empty, some)["ap"] == 0.0
    assert seg_accuracy(empty, empty) == 1.0 and seg_accuracy(some, empty) == 0.0


def test_three_d_objects_are_whole():
    gt = boxes((2, 4, 4), np.s_[0:2, 0:2, 0:2])
    pred = boxes((2, 4, 4), np.s_[0:1, 0:2, 0:2])  # half the 3-D object: IoU 0.5
    r = average_precision(pred, gt)
    assert r["ap50"] == 1.0 and r["ap"] == pytest.approx(0.1)


def test_tied_scores_form_one_rank():
    gt = boxes((2, 6), np.s_[:, 0:2])
    pred = boxes((2, 6), np.s_[:, 0:2], np.s_[:, 4:6])  # a TP and an FP of the same size
    assert average_precision(pred, gt)["ap50"] == pytest.approx(0.5)
    assert average_precision(np.where(pred > 0, 3 - pred, 0), gt)["ap50"] == pytest.approx(0.5)


def test_instance_scores_mean_probability():
    pred = np.array([[1, 1, 2], [0, 2, 2]])
    prob = np.array([[0.2, 0.4, 1.0], [0.0, 0.5, 0.0]])
    table = contingency_table(pred, pred)
    np.testing.assert_allclose(instance_scores(pred, table, prob, chunk_voxels=1), [0.3, 0.5])
    np.testing.assert_array_equal(instance_scores(pred, table), [2, 3])


def coco_reference(pred: np.ndarray, gt: np.ndarray, scores: dict[int, float]) -> list[float]:
    """COCOeval.evaluateImg + accumulate for one image, written out literally with dense IoUs."""
    p_ids = [i for i in np.unique(pred) if i != 0]
    g_ids = [i for i in np.unique(gt) if i != 0]
    p_ids = sorted(p_ids, key=lambda i: -scores[i])
    ious = np.array(
        [[np.sum((pred == p) & (gt == g)) / np.sum((pred == p) | (gt == g)) for g in g_ids] for p in p_ids]
    ).reshape(len(p_ids), len(g_ids))
    rec_thrs = np.linspace(0.0, 1.00, 101)
    out = []
    for t in IOU_THRESHOLDS:
        gt_m = np.zeros(len(g_ids))
        dt_m = np.zeros(len(p_ids))
        for d in range(len(p_ids)):
            best, m = min(t, 1 - 1e-10), -1
            for g in range(len(g_ids)):
                if gt_m[g] or ious[d, g] < best:
                    continue
                best, m = ious[d, g], g
            if m >= 0:
                dt_m[d], gt_m[m] = 1, 1
        tp, fp = np.cumsum(dt_m), np.cumsum(1 - dt_m)
        rc = tp / len(g_ids)
        pr = (tp / (fp + tp + np.spacing(1))).tolist()
        for i in range(len(pr) - 1, 0, -1):
            pr[i - 1] = max(pr[i - 1], pr[i])
        q = np.zeros(101)
        inds = np.searchsorted(rc, rec_thrs, side="left")
        for ri, pi in enumerate(inds):
            if pi < len(pr):
                q[ri] = pr[pi]
        out.append(float(q.mean()))
    return out


instance_maps = hnp.arrays(
    np.int32, st.tuples(st.integers(1, 2), st.integers(3, 8), st.integers(3, 8)), elements=st.integers(0, 4)
)


@settings(max_examples=50, deadline=None)
@given(instance_maps, instance_maps, st.integers(0, 2**31))
def test_matches_literal_coco_with_distinct_scores(pred, gt, seed):
    gt = gt[: pred.shape[0], : pred.shape[1], : pred.shape[2]]
    pred = pred[: gt.shape[0], : gt.shape[1], : gt.shape[2]]
    if not (gt > 0).any():
        return
    prob = np.random.default_rng(seed).random(pred.shape)
    table = contingency_table(pred, gt)
    s = instance_scores(pred, table, prob)
    scores = dict(zip(table.pred_ids[table.pred_ids != 0].tolist(), s.tolist()))
    ref = coco_reference(pred, gt, scores)
    r = average_precision(pred, gt, prob=prob)
    assert r["ap50"] == pytest.approx(ref[0], abs=1e-9)
    assert r["ap75"] == pytest.approx(ref[IOU_THRESHOLDS.index(0.75)], abs=1e-9)
    assert r["ap"] == pytest.approx(np.mean(ref), abs=1e-9)


@settings(max_examples=50, deadline=None)
@given(instance_maps, st.data())
def test_invariant_to_label_permutation(gt, data):
    pred = data.draw(hnp.arrays(np.int32, gt.shape, elements=st.integers(0, 4)))

    def relabel(a):
        ids = np.unique(a)
        new = np.array(data.draw(st.lists(st.integers(1, 10**6), min_size=ids.size, max_size=ids.size, unique=True)))
        return np.where(ids == 0, 0, new)[np.searchsorted(ids, a)]

    a, b = average_precision(pred, gt), average_precision(relabel(pred), relabel(gt))
    assert a == pytest.approx(b, abs=1e-12)
    assert seg_accuracy(pred, gt) == pytest.approx(seg_accuracy(relabel(pred), relabel(gt)))
