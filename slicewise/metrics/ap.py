"""Instance average precision (COCO-style) and segmentation accuracy, from a sparse contingency table.

Instances are the non-zero ids of a label map (0 = background in both maps); a 3-D label map
gives whole 3-D objects (the MitoEM convention), a 2-D map 2-D objects. IoU of a predicted and
a ground-truth instance = ``|P∩G| / |P∪G|`` in voxels, read off the contingency table.

Average precision, as COCO's ``COCOeval`` does for segmentation masks:

- score of a predicted instance = mean foreground probability inside it, or its size in voxels
  when no probability map is given;
- at IoU threshold t, predictions are taken by descending score and each is matched greedily to
  the unmatched ground-truth instance of highest IoU with IoU ≥ t (each ground truth matched at
  most once); unmatched predictions are false positives;
- precision is made monotone (running maximum from the high-recall end) and sampled at the 101
  recall points 0, 0.01, …, 1 (0 beyond the highest recall reached); AP is their mean;
- ``ap50`` and ``ap75`` at t = 0.50 and 0.75, ``ap`` the mean over t = 0.50, 0.55, …, 0.95.

Differences from COCO, chosen so the result never depends on label ids: predictions with equal
scores form one rank (precision/recall are read only between distinct scores; COCO breaks ties
by detection order); no crowd regions, no area ranges, no detection limit. Empty cases, where
COCO reports -1: no ground truth and no prediction → AP 1 (nothing to find, nothing found);
predictions but no ground truth → 0; ground truth but no prediction → 0.

Segmentation accuracy (``seg_accuracy``) is a different number that some tools (e.g. the
DSB 2018 / StarDist "AP") also call AP: with the same matching at one threshold,
``TP / (TP + FP + FN)``; 1 when both maps are empty.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from slicewise.metrics.contingency import CHUNK_VOXELS, Contingency, contingency_table

#: IoU thresholds 0.50:0.05:0.95 (rounded so that e.g. an IoU of exactly 11/20 passes 0.55).
IOU_THRESHOLDS: tuple[float, ...] = tuple(float(t) for t in np.round(np.linspace(0.5, 0.95, 10), 2))
#: COCO's 101 recall sampling points.
RECALL_POINTS = np.linspace(0.0, 1.0, 101)


def instance_ious(table: Contingency) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Overlapping instance pairs of a label table.

    Returns ``(pred_ids, gt_ids, p, g, iou)``: the non-zero instance ids of each map, and for every
    overlapping pair the index ``p`` into ``pred_ids``, ``g`` into ``gt_ids`` and its IoU.
    """
    p_keep = table.pred_ids != 0
    g_keep = table.gt_ids != 0
    p_index = np.cumsum(p_keep) - 1
    g_index = np.cumsum(g_keep) - 1
    rows, cols, inter = table.pairs()
    pair = g_keep[rows] & p_keep[cols] & (inter > 0)
    rows, cols, inter = rows[pair], cols[pair], inter[pair].astype(np.float64)
    union = table.gt_sizes[rows] + table.pred_sizes[cols] - inter
    return table.pred_ids[p_keep], table.gt_ids[g_keep], p_index[cols], g_index[rows], inter / union


def instance_scores(
    pred: Any, table: Contingency, prob: Any | None = None, chunk_voxels: int = CHUNK_VOXELS
) -> np.ndarray:
    """Score per non-zero predicted instance (order of ``instance_ious(table)[0]``).

    The mean of ``prob`` (foreground probability, same shape as ``pred``) over the instance's
    voxels, or its size in voxels when ``prob`` is None.
    """
    p_keep = table.pred_ids != 0
    if prob is None:
        return table.pred_sizes[p_keep].astype(np.float64)
    sums = np.zeros(table.pred_ids.size, np.float64)
    shape = tuple(pred.shape)
    per_row = int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else 1
    step = max(1, chunk_voxels // max(per_row, 1))
    for z in range(0, shape[0], step):
        labels = np.asarray(pred[z : z + step]).ravel()
        weights = np.asarray(prob[z : z + step], dtype=np.float64).ravel()
        sums += np.bincount(np.searchsorted(table.pred_ids, labels), weights=weights, minlength=table.pred_ids.size)
    return (sums / np.maximum(table.pred_sizes, 1))[p_keep]


def match_instances(
    n_pred: int, n_gt: int, p: np.ndarray, g: np.ndarray, iou: np.ndarray, scores: np.ndarray, threshold: float
) -> np.ndarray:
    """Greedy COCO matching at one IoU threshold; returns a bool "is a true positive" per prediction."""
    matched_p = np.zeros(n_pred, bool)
    matched_g = np.zeros(n_gt, bool)
    cand = iou >= threshold
    p, g, iou = p[cand], g[cand], iou[cand]
    if np.unique(p).size == p.size and np.unique(g).size == g.size:  # always so for thresholds above 0.5
        matched_p[p] = True
        return matched_p
    rank = np.empty(n_pred, np.int64)
    rank[np.argsort(-scores, kind="stable")] = np.arange(n_pred)
    for k in np.lexsort((-iou, rank[p])):
        if not matched_p[p[k]] and not matched_g[g[k]]:
            matched_p[p[k]] = matched_g[g[k]] = True
    return matched_p


def _ap_from_matches(tp: np.ndarray, scores: np.ndarray, n_gt: int) -> float:
    """101-point interpolated AP from true-positive flags and scores (tied scores form one rank)."""
    if n_gt == 0:
        return 1.0 if tp.size == 0 else 0.0
    if tp.size == 0:
        return 0.0
    order = np.argsort(-scores, kind="stable")
    s = scores[order]
    ctp = np.cumsum(tp[order])
    ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True])
    recall = ctp[ends] / n_gt
    precision = np.maximum.accumulate((ctp[ends] / (ends + 1))[::-1])[::-1]
    idx = np.searchsorted(recall, RECALL_POINTS, side="left")
    q = np.where(idx < precision.size, precision[np.minimum(idx, precision.size - 1)], 0.0)
    return float(q.mean())


def ap_from_table(
    table: Contingency, scores: np.ndarray | None = None, thresholds: Sequence[float] = IOU_THRESHOLDS
) -> dict[str, float]:
    """``{"ap", "ap50", "ap75"}`` (``ap`` = mean over ``thresholds``) plus instance counts.

    ``scores`` per non-zero predicted instance (see :func:`instance_scores`; default: sizes).
    """
    pred_ids, gt_ids, p, g, iou = instance_ious(table)
    if scores is None:
        scores = table.pred_sizes[table.pred_ids != 0].astype(np.float64)

    def ap_at(t: float) -> float:
        return _ap_from_matches(match_instances(pred_ids.size, gt_ids.size, p, g, iou, scores, t), scores, gt_ids.size)

    per_t = {float(t): ap_at(float(t)) for t in thresholds}
    out = {"ap": float(np.mean(list(per_t.values())))}
    for t, key in ((0.5, "ap50"), (0.75, "ap75")):
        out[key] = per_t[t] if t in per_t else ap_at(t)
    out["n_pred"] = int(pred_ids.size)
    out["n_gt"] = int(gt_ids.size)
    return out


def average_precision(
    pred: Any,
    gt: Any,
    prob: Any | None = None,
    *,
    table: Contingency | None = None,
    thresholds: Sequence[float] = IOU_THRESHOLDS,
) -> dict[str, float]:
    """COCO-style instance AP of label maps ``pred`` vs ``gt`` (see the module docstring).

    ``prob``: foreground probability map with ``pred``'s shape (scores = mean inside each
    instance); None scores instances by size. Returns ``{"ap", "ap50", "ap75", "n_pred", "n_gt"}``.
    """
    t = table if table is not None else contingency_table(pred, gt)
    return ap_from_table(t, instance_scores(pred, t, prob), thresholds)


def seg_accuracy_from_table(table: Contingency, threshold: float = 0.5) -> float:
    """``TP / (TP + FP + FN)`` at one IoU threshold (not COCO AP; 1 when both maps are empty)."""
    pred_ids, gt_ids, p, g, iou = instance_ious(table)
    scores = table.pred_sizes[table.pred_ids != 0].astype(np.float64)
    tp = int(match_instances(pred_ids.size, gt_ids.size, p, g, iou, scores, threshold).sum())
    denom = pred_ids.size + gt_ids.size - tp
    return tp / denom if denom > 0 else 1.0


def seg_accuracy(pred: Any, gt: Any, threshold: float = 0.5, *, table: Contingency | None = None) -> float:
    """Segmentation accuracy TP/(TP+FP+FN) of instance label maps, called "AP" by some tools."""
    return seg_accuracy_from_table(table if table is not None else contingency_table(pred, gt), threshold)
