"""Per-class Dice and IoU of semantic label maps, and binary foreground Dice.

For class c with predicted set P and ground-truth set G (voxels):
``Dice = 2|P∩G| / (|P| + |G|)``, ``IoU = |P∩G| / |P∪G|``. When the class is absent from both
(empty vs empty) both are 1: nothing was there and nothing was predicted. Both are symmetric in
``pred`` and ``gt``. Classes default to every label present in either map; pass ``classes`` to
score a fixed list (absent classes then score 1 by the empty rule, or 0 if present in only one;
:func:`slicewise.metrics.evaluate` instead reports a listed class absent from both maps as not scored).
Foreground Dice treats every non-zero label as foreground (``pred > 0`` vs ``gt > 0``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from slicewise.metrics.contingency import Contingency, contingency_table


def overlap_from_table(table: Contingency, classes: Sequence[int] | None = None) -> dict[str, dict[int, float]]:
    """``{"dice": {class: value}, "iou": {class: value}}`` of a semantic contingency table."""
    if classes is None:
        classes = np.union1d(table.gt_ids, table.pred_ids).tolist()
    dice: dict[int, float] = {}
    iou: dict[int, float] = {}
    for c in classes:
        inter, size_p, size_g = _class_counts(table, int(c))
        total = size_p + size_g
        dice[int(c)] = 2.0 * inter / total if total > 0 else 1.0
        iou[int(c)] = inter / (total - inter) if total > 0 else 1.0
    return {"dice": dice, "iou": iou}


def _class_counts(table: Contingency, c: int) -> tuple[int, int, int]:
    """(|P∩G|, |P|, |G|) of class ``c`` in voxels."""
    gi = np.searchsorted(table.gt_ids, c)
    pj = np.searchsorted(table.pred_ids, c)
    in_g = gi < table.gt_ids.size and table.gt_ids[gi] == c
    in_p = pj < table.pred_ids.size and table.pred_ids[pj] == c
    size_g = int(table.gt_sizes[gi]) if in_g else 0
    size_p = int(table.pred_sizes[pj]) if in_p else 0
    inter = int(table.counts[gi, pj]) if (in_g and in_p) else 0
    return inter, size_p, size_g


def dice(
    pred: Any, gt: Any, classes: Sequence[int] | None = None, *, table: Contingency | None = None
) -> dict[int, float]:
    """Dice per class ``{class: value}`` (empty vs empty = 1)."""
    return overlap_from_table(table if table is not None else contingency_table(pred, gt), classes)["dice"]


def iou(
    pred: Any, gt: Any, classes: Sequence[int] | None = None, *, table: Contingency | None = None
) -> dict[int, float]:
    """IoU (Jaccard) per class ``{class: value}`` (empty vs empty = 1)."""
    return overlap_from_table(table if table is not None else contingency_table(pred, gt), classes)["iou"]


def foreground_dice_from_table(table: Contingency) -> float:
    """Dice of ``pred > 0`` vs ``gt > 0`` from a label table (empty vs empty = 1)."""
    rows, cols, counts = table.pairs()
    g_fg = table.gt_ids[rows] != 0
    p_fg = table.pred_ids[cols] != 0
    inter = float(counts[g_fg & p_fg].sum())
    total = float(counts[g_fg].sum() + counts[p_fg].sum())
    return 2.0 * inter / total if total > 0 else 1.0


def foreground_dice(pred: Any, gt: Any, *, table: Contingency | None = None) -> float:
    """Binary Dice of foreground (any non-zero label) in ``pred`` vs ``gt``."""
    return foreground_dice_from_table(table if table is not None else contingency_table(pred, gt))
