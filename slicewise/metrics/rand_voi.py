"""Neuron-segmentation scores: adapted Rand error (SNEMI3D / CREMI) and variation of information.

Both are computed from the sparse :class:`~slicewise.metrics.contingency.Contingency` table
``n_ij`` (i: ground-truth label, j: predicted label) and agree with ``skimage.metrics`` to
rounding.

Adapted Rand (pairs of distinct voxels, as ``skimage.metrics.adapted_rand_error``):
ground-truth label 0 is ignored (those voxels are dropped); predicted 0 is an ordinary segment.
With ``a_i`` the ground-truth sizes, ``b_j`` the predicted sizes (over the kept voxels) and
``N`` the number of kept voxels::

    S = Σ n_ij² − N    (pairs together in both)
    A = Σ a_i² − N     (pairs together in the ground truth)
    B = Σ b_j² − N     (pairs together in the prediction)
    precision = S / B  = Rand merge score: of the pairs the prediction joins, the share the
                         ground truth joins too; false merges lower it.
    recall    = S / A  = Rand split score: of the pairs the ground truth joins, the share the
                         prediction joins too; false splits lower it.
    F = 2·S / (A + B)  (harmonic mean of precision and recall),  ARE = 1 − F.

``skimage.metrics.adapted_rand_error(gt, pred)`` returns ``(ARE, S/A, S/B)`` and calls the second
"precision" and the third "recall" (a known scikit-image naming slip): its "precision" is our recall.
Conventions where skimage divides by zero: precision = 1 when B = 0 (the prediction joins no
pair, so it makes no false merge), recall = 1 when A = 0, F = 1 when A + B = 0 (also when no
voxel is left), so ARE is 0 there.

Variation of information, in bits (log base 2, as ``skimage.metrics.variation_of_information``
in scikit-image ≥ 0.19): split = H(pred | gt) (over-segmentation), merge = H(gt | pred)
(under-segmentation), VOI = split + merge. Ground-truth 0 is ignored by default (voxels dropped),
matching ``variation_of_information(gt, pred, ignore_labels=(0,))`` which returns
``[split, merge]``; with ``ignore_gt_zero=False`` it matches ``ignore_labels=()``.
No voxel left → 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from slicewise.metrics.contingency import Contingency, contingency_table


def _table(pred: Any, gt: Any, table: Contingency | None, ignore_gt_zero: bool) -> Contingency:
    t = table if table is not None else contingency_table(pred, gt)
    return t.without_gt((0,)) if ignore_gt_zero else t


def adapted_rand_from_table(table: Contingency) -> dict[str, float]:
    """ARE, F, precision (merge score) and recall (split score) of a table (nothing ignored here)."""
    n = float(table.n_voxels)
    data = table.counts.data.astype(np.float64)
    s = float(data @ data) - n
    a = float(table.gt_sizes.astype(np.float64) @ table.gt_sizes) - n
    b = float(table.pred_sizes.astype(np.float64) @ table.pred_sizes) - n
    precision = s / b if b > 0 else 1.0
    recall = s / a if a > 0 else 1.0
    f = 2.0 * s / (a + b) if a + b > 0 else 1.0
    return {"are": 1.0 - f, "rand_f": f, "rand_precision": precision, "rand_recall": recall}


def adapted_rand(
    pred: Any = None, gt: Any = None, *, table: Contingency | None = None, ignore_gt_zero: bool = True
) -> dict[str, float]:
    """Adapted Rand error of a predicted vs ground-truth label map (see the module docstring).

    Returns ``{"are", "rand_f", "rand_precision" (merge score), "rand_recall" (split score)}``.
    ``table`` (a full, unfiltered table of ``pred`` vs ``gt``) skips recounting.
    """
    return adapted_rand_from_table(_table(pred, gt, table, ignore_gt_zero))


def voi_from_table(table: Contingency) -> dict[str, float]:
    """VOI split = H(pred|gt), merge = H(gt|pred) and their sum, in bits, of a table."""
    n = float(table.n_voxels)
    if n == 0:
        return {"voi_split": 0.0, "voi_merge": 0.0, "voi": 0.0}
    rows, cols, counts = table.pairs()
    nij = counts.astype(np.float64)
    keep = nij > 0
    rows, cols, nij = rows[keep], cols[keep], nij[keep]
    split = float(-(nij * np.log2(nij / table.gt_sizes[rows])).sum() / n)
    merge = float(-(nij * np.log2(nij / table.pred_sizes[cols])).sum() / n)
    split, merge = max(split, 0.0) + 0.0, max(merge, 0.0) + 0.0  # + 0.0: a perfect score is 0.0, never -0.0
    return {"voi_split": split, "voi_merge": merge, "voi": split + merge}


def voi(
    pred: Any = None, gt: Any = None, *, table: Contingency | None = None, ignore_gt_zero: bool = True
) -> dict[str, float]:
    """Variation of information ``{"voi_split", "voi_merge", "voi"}`` in bits (see the module docstring)."""
    return voi_from_table(_table(pred, gt, table, ignore_gt_zero))
