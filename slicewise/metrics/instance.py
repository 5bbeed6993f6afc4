"""Instance scores of a contingency table: adapted Rand, VOI, AP, segmentation accuracy, foreground Dice.

ARE with Rand precision (= merge score) and recall (= split score) and VOI split / merge in bits are computed
without ground-truth 0 when ``ignore_gt_zero`` (the SNEMI3D / CREMI rule); COCO-style AP (``ap``, ``ap50``,
``ap75``) ranks predicted instances by ``scores`` (None: by size); ``seg_accuracy`` is TP/(TP+FP+FN) at
``seg_threshold`` (what some tools call AP). Empty cases follow :mod:`~slicewise.metrics.rand_voi` and
:mod:`~slicewise.metrics.ap`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from slicewise.metrics.ap import ap_from_table, seg_accuracy_from_table
from slicewise.metrics.contingency import Contingency, ids_text
from slicewise.metrics.overlap import foreground_dice_from_table
from slicewise.metrics.rand_voi import adapted_rand_from_table, voi_from_table

SEMANTIC_GT_SHARE = 0.5
"""An instance ground truth with two values, one of them on more than this share of the voxels, looks semantic."""


def instance_metrics(
    table: Contingency, scores: np.ndarray | None, ignore_gt_zero: bool = True, seg_threshold: float = 0.5
) -> dict[str, Any]:
    """The instance metrics of one volume or slice from its table and per-instance scores."""
    kept = table.without_gt((0,)) if ignore_gt_zero else table
    out: dict[str, Any] = {}
    out.update(adapted_rand_from_table(kept))
    out.update(voi_from_table(kept))
    out.update(ap_from_table(table, scores))
    out["seg_accuracy"] = seg_accuracy_from_table(table, seg_threshold)
    out["foreground_dice"] = foreground_dice_from_table(table)
    return out


def semantic_gt_warnings(table: Contingency) -> list[str]:
    """One-line warning when instances are scored against ground truth that looks semantic: exactly two
    values, one of them covering most of the voxels (ISBI's 0/255 membrane map, a binary mask). Instance
    metrics would then count one (or two) ground-truth objects; the fix is the connected components."""
    if table.gt_ids.size != 2 or table.n_voxels == 0:
        return []
    big = int(np.argmax(table.gt_sizes))
    share = float(table.gt_sizes[big]) / table.n_voxels
    if share <= SEMANTIC_GT_SHARE:
        return []
    return [
        f"the ground truth holds only the values {ids_text(table.gt_ids)} ({int(table.gt_ids[big])} on "
        f"{100 * share:.0f}% of the voxels): it looks semantic, so instance scores count one object; label its "
        f"connected components with --components gt (Python: membranes_to_neurons(gt))"
    ]
