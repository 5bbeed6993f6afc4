"""Semantic scores of a contingency table: per-class Dice and IoU, their means, foreground Dice; label-set warnings.

Keys of the per-class dicts are the class ids as strings. A class in neither map is never scored: by default only
labels present are, and a listed one (``classes``) is ``None`` with a one-line warning (:func:`absent_class_warnings`)
rather than the empty rule's 1 of :mod:`~slicewise.metrics.overlap`. Negative class ids are refused by ``evaluate``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from slicewise.errors import InputError
from slicewise.metrics.contingency import Contingency, ids_text
from slicewise.metrics.overlap import foreground_dice_from_table, overlap_from_table

#: more distinct labels than this under ``kind="semantic"`` (without ``classes``) is taken as a mistake.
MAX_SEMANTIC_CLASSES = 256


def semantic_scores(table: Contingency, classes: Sequence[int] | None) -> dict[str, Any]:
    """``dice`` / ``iou`` per class, ``mean_dice`` / ``mean_iou`` over the scored classes, ``foreground_dice``."""
    if classes is None and np.union1d(table.gt_ids, table.pred_ids).size > MAX_SEMANTIC_CLASSES:
        raise InputError(
            f"more than {MAX_SEMANTIC_CLASSES} distinct labels for a semantic evaluation: "
            f"these look like instance ids (use kind='instance', --kind instance) or list the classes to score"
        )
    ov = overlap_from_table(table, classes)
    have = {int(v) for v in np.union1d(table.gt_ids, table.pred_ids)}
    out: dict[str, Any] = {}
    for name in ("dice", "iou"):
        # a listed class in neither map is not scored (absent_class_warnings), as an absent class is by default
        scores = {str(c): (v if c in have else None) for c, v in ov[name].items()}
        scored = [v for v in scores.values() if v is not None]
        out[name] = scores
        out[f"mean_{name}"] = float(np.mean(scored)) if scored else (None if scores else 1.0)
    out["foreground_dice"] = foreground_dice_from_table(table)
    return out


def absent_class_warnings(table: Contingency, classes: Sequence[int] | None) -> list[str]:
    """One-line warning naming the listed ``classes`` that occur in neither map of the scored volume (table).

    Decision: a class in neither map is not scored, listed or not: by default evaluate scores only the
    labels present, and a listed absent class is reported as ``None`` (JSON ``null``, ``n/a`` in the
    table) and left out of the means (:func:`semantic_scores`), never as the Dice/IoU 1 of the empty rule of
    :mod:`~slicewise.metrics.overlap`, which made a typo (``--classes 255`` on 0/1 maps) look perfect.
    The same holds in each ``per_slice`` row (a class absent from a slice is ``None`` there, and the
    slice mean averages the slices that score it); only the volume warns.
    """
    present = np.union1d(table.gt_ids, table.pred_ids)
    have = {int(v) for v in present}
    absent = [int(c) for c in classes or () if int(c) not in have]
    if not absent:
        return []
    return [
        f"class{'es' if len(absent) > 1 else ''} {', '.join(map(str, absent))} (--classes) in neither the prediction "
        f"nor the ground truth (labels {ids_text(present)}): not scored (n/a); check the class ids or --label-map"
    ]


def label_set_warnings(table: Contingency, gt_mapped: bool = False, pred_mapped: bool = False) -> list[str]:
    """One-line warning when the prediction and the ground truth share no label (every Dice/IoU is 0)."""
    if table.gt_ids.size == 0 or table.pred_ids.size == 0:
        return []
    if np.intersect1d(table.gt_ids, table.pred_ids).size:
        return []
    fix = (
        "check --label-map / --pred-label-map"
        if gt_mapped or pred_mapped
        else f"map them onto each other, e.g. --label-map {int(table.gt_ids[-1])}:{int(table.pred_ids[-1])}"
    )
    return [
        f"prediction labels {ids_text(table.pred_ids)} and ground-truth labels {ids_text(table.gt_ids)} "
        f"share no value, so every Dice/IoU is 0: {fix}"
    ]
