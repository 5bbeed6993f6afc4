"""``evaluate``: every metric of a prediction against ground truth, as a JSON-ready dict.

Kinds:

- ``semantic``: class label maps → per-class Dice and IoU (keys are the class ids as strings),
  their means over the scored classes, and foreground Dice (non-zero vs zero); see
  :mod:`~slicewise.metrics.semantic`.
- ``instance``: instance / neuron label maps (0 = background) → adapted Rand error with Rand
  precision (= merge score) and recall (= split score), VOI split/merge in bits, COCO-style
  AP (``ap``, ``ap50``, ``ap75``), segmentation accuracy TP/(TP+FP+FN) at ``seg_threshold``
  (``seg_accuracy``, which some tools call AP), instance counts and foreground Dice; see
  :mod:`~slicewise.metrics.instance`.

The volume metrics treat a 3-D map as one volume (3-D objects, MitoEM convention);
``per_slice=True`` adds the same metrics for each z-slice alone (2-D objects) and their mean
over slices. A 2-D map is one slice. Conventions for empty cases are those of
:mod:`~slicewise.metrics.overlap`, :mod:`~slicewise.metrics.rand_voi` and
:mod:`~slicewise.metrics.ap`, except that a semantic class in neither map is never scored: not by
default (only labels present are), and a listed one (``classes``) is ``None`` with a one-line warning
(:func:`~slicewise.metrics.semantic.absent_class_warnings`) rather than the empty rule's 1. Negative class
ids are refused.

The steps, one module each: open the two maps (and the probabilities) and cut them to the scored box
(:mod:`~slicewise.metrics.inputs`, with the membrane → neuron step of :mod:`~slicewise.metrics.neurons`),
count label pairs block by block (:mod:`~slicewise.metrics.blockwise`), score the tables by kind, and
summarize (:mod:`~slicewise.metrics.report`).

Membrane maps such as ISBI 2012 (0 = membrane, 255 = cell interior) are semantic maps: for
neuron scores, label the connected interior regions of both maps (``components="both"``, or
:func:`~slicewise.metrics.neurons.membranes_to_neurons`) and evaluate those with ``kind="instance"``
(ground-truth 0, the membrane, is then ignored by ARE and VOI as in the SNEMI3D / ISBI
foreground-restricted scores; fill the predicted membrane with ``fill=True``, since predicted 0 is an
ordinary segment).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from slicewise.data.grid import Box as Roi
from slicewise.data.grid import block_grid
from slicewise.errors import InputError
from slicewise.metrics.blockwise import DEFAULT_BLOCK, BlockTask, count_blocks, tables
from slicewise.metrics.contingency import Contingency
from slicewise.metrics.inputs import foreground_view, open_pair, store_class_names
from slicewise.metrics.instance import instance_metrics, semantic_gt_warnings
from slicewise.metrics.neurons import check_components
from slicewise.metrics.report import mean_rows
from slicewise.metrics.semantic import absent_class_warnings, label_set_warnings, semantic_scores

log = logging.getLogger(__name__)

KINDS: tuple[str, ...] = ("semantic", "instance")


def evaluate(
    pred: Any,
    gt: Any,
    kind: str = "semantic",
    classes: Sequence[int] | None = None,
    prob: Any | None = None,
    per_slice: bool = False,
    ignore_gt_zero: bool = True,
    seg_threshold: float = 0.5,
    key: str | None = None,
    *,
    roi: Roi | Sequence[slice] | None = None,
    block: Sequence[int] | None = None,
    dask: str | None = None,
    label_map: dict[int, int] | None = None,
    pred_label_map: dict[int, int] | None = None,
    class_names: Sequence[str] | None = None,
    components: str = "none",
    fill: bool = False,
) -> dict[str, Any]:
    """Score label map ``pred`` against ``gt`` (arrays, lazy volumes or file paths), block by block.

    Args:
        pred, gt: integer label maps (ids >= 0; uint64 when the ids fit int64) of equal shape,
            Z×Y×X or Y×X. A prediction file that records an ``offset`` (labels of a ROI, as
            ``slicewise segment --roi`` writes them) is placed at that offset in ``gt``.
        kind: ``"semantic"`` or ``"instance"`` (see the module docstring).
        classes: semantic classes to score (default: every label present in either map). Negative ids are
            refused in one line; a listed class in neither map is not scored (``None``, ``n/a``; see
            :func:`~slicewise.metrics.semantic.absent_class_warnings`).
        prob: instance scores for AP: a foreground-probability map shaped like ``pred``, or
            channel-first class probabilities (C, *pred.shape) where channel 0 is background
            (foreground = 1 − prob[0]; with C = 1 the single channel is the foreground), or a
            probability file from ``slicewise predict`` (its ``offset`` is honored). None scores
            instances by size.
        per_slice: also score each z-slice alone.
        ignore_gt_zero: drop ground-truth-0 voxels from ARE and VOI (the SNEMI3D / CREMI rule); instance only.
        seg_threshold: IoU threshold of ``seg_accuracy``, in (0, 1].
        key: dataset key for HDF5/Zarr paths.
        roi: (z, y, x) slices in ground-truth coordinates (``--z`` / ``--roi``): score only that box
            of both maps; it must lie inside the prediction.
        block: (z, y, x) block read at a time (default :data:`~slicewise.metrics.blockwise.DEFAULT_BLOCK`);
            memory is one block plus the distinct label pairs. Results do not depend on it.
        dask: None (this process), ``"threads"``, ``"local:N"`` or ``"tcp://host:port"`` (see
            :mod:`slicewise.metrics.blockwise`); same result.
        label_map: raw ground-truth value → class, as training's ``data.label_map`` (e.g. ``{0: 1, 255: 0}``
            for an ISBI membrane map); applied to the ground truth only, block by block; every value
            present must be mapped. ``pred_label_map``: the same for the prediction (a prediction from
            ``slicewise predict`` is already in classes and needs none).
        class_names: names of classes 0, 1, … for a semantic result (``"class_names": {"1": "membrane"}``;
            :func:`~slicewise.metrics.report.format_table` prints ``dice[membrane]``; the JSON keeps the ids);
            default the channel names a ``slicewise predict`` label store records (the model's ``class_names``).
        components: ``"gt"``, ``"pred"``, ``"both"`` or ``"none"``: label the connected non-zero regions of
            each z-slice of that map first (:mod:`~slicewise.metrics.neurons`; membrane maps such as ISBI 2012),
            after its label map; instance only. Those maps are read whole.
        fill: with ``components`` ``"pred"`` / ``"both"``: predicted membrane voxels take the id of the nearest cell.

    A semantic evaluation whose prediction and ground-truth label sets share no value (prediction {0, 1}
    against ground truth {0, 255}: every Dice is 0) logs a one-line warning and lists it under
    ``"warnings"`` in the result. So does an instance evaluation against ground truth that looks semantic
    (:func:`~slicewise.metrics.instance.semantic_gt_warnings`: two values, one covering most of the voxels,
    e.g. ISBI's 0/255 membranes), which names the fix (``components="gt"``, ``--components gt``).

    Returns:
        ``{"kind", "shape", "settings", "volume": {metric: value}}`` plus, with ``per_slice``,
        ``"per_slice": [{"z": z, metric: value, ...}, ...]`` (z in ground-truth coordinates) and
        ``"slice_mean"``; plain floats. ``"offset"`` is the scored box's start in the ground truth.
    """
    _check_settings(kind, classes, class_names, prob, seg_threshold, ignore_gt_zero)
    check_components(components, fill, kind)
    pair = open_pair(
        pred,
        gt,
        key,
        roi=roi,
        label_map=label_map,
        pred_label_map=pred_label_map,
        components=components,
        fill=fill,
    )
    fg = None if prob is None else foreground_view(prob, key, pair)
    counts = count_blocks(
        BlockTask(pair.pred, pair.gt, fg, per_slice), block_grid(pair.pred.shape, _block(block)), dask
    )
    volume, scores, slices = tables(counts, fg is not None)

    def score(table: Contingency, sc: np.ndarray | None) -> dict[str, Any]:
        if kind == "semantic":
            return semantic_scores(table, classes)
        return instance_metrics(table, sc, ignore_gt_zero, seg_threshold)

    settings = {
        "label_map": _jsonable_map(label_map),
        "pred_label_map": _jsonable_map(pred_label_map),
        "ignore_gt_zero": bool(ignore_gt_zero),
        "seg_threshold": float(seg_threshold),
        "scores": "size" if fg is None else "mean foreground probability",
        "classes": None if classes is None else [int(c) for c in classes],
    }
    result: dict[str, Any] = {"kind": kind, "shape": [int(s) for s in pair.pred.shape], "settings": settings}
    if any(s.start for s in pair.box):
        result["offset"] = [int(s.start) for s in pair.box]
    result["volume"] = score(volume, scores)
    if kind == "semantic":
        named = _named_classes(class_names, pred, result["volume"])
        result.update({"class_names": named} if named else {})
    warnings = _warnings(volume, kind, classes, bool(label_map), bool(pred_label_map))
    if warnings:
        result["warnings"] = warnings
    if per_slice:
        rows = [{"z": int(pair.box[0].start + z), **score(t, sc)} for z, (t, sc) in slices.items()]
        result["per_slice"] = rows
        result["slice_mean"] = mean_rows(rows)
    return result


def _check_settings(
    kind: str,
    classes: Sequence[int] | None,
    class_names: Sequence[str] | None,
    prob: Any,
    seg_threshold: float,
    ignore_gt_zero: bool,
) -> None:
    """Refuse in one line a setting that is out of range or means nothing for ``kind``."""
    if kind not in KINDS:
        raise InputError(f"unknown evaluation kind {kind!r}: use one of {', '.join(KINDS)}")
    if not 0.0 < float(seg_threshold) <= 1.0:
        raise InputError(f"seg_threshold {seg_threshold} must be an IoU in (0, 1]")
    if classes is not None and kind == "instance":
        raise InputError(
            "classes (--classes) select semantic classes; instance evaluation scores objects: drop it, "
            "or use kind='semantic' (--kind semantic)"
        )
    if class_names and kind == "instance":
        raise InputError(
            "class names (--class-names) label semantic classes; instance evaluation scores objects: "
            "drop them, or use kind='semantic' (--kind semantic)"
        )
    negative = [int(c) for c in classes or () if int(c) < 0]
    if negative:
        raise InputError(f"classes (--classes) hold negative id {negative[0]}: class ids are label values >= 0")
    if prob is not None and kind != "instance":
        raise InputError(
            "probabilities only score instances for AP: pass kind='instance' (--kind instance) or drop prob"
        )
    if not ignore_gt_zero and kind == "semantic":
        raise InputError(
            "--keep-gt-zero applies to instance scores (ARE, VOI); semantic Dice/IoU always count class 0: "
            "drop it, or add --kind instance"
        )


def _block(block: Sequence[int] | None) -> tuple[int, ...]:
    blk = tuple(int(b) for b in (block if block is not None else DEFAULT_BLOCK))
    if len(blk) != 3 or min(blk) < 1:
        raise InputError(f"block {tuple(blk)} must be three integers >= 1 (Z,Y,X)")
    return blk


def _named_classes(class_names: Sequence[str] | None, pred: Any, volume: dict[str, Any]) -> dict[str, str] | None:
    """Class id → name of the scored classes: ``class_names`` (of classes 0, 1, …), else a predict store's."""
    names = list(class_names) if class_names else store_class_names(pred)
    if not names:
        return None
    present = {int(k) for k in volume.get("dice", {})}
    return {str(i): str(n) for i, n in enumerate(names) if i in present}


def _jsonable_map(m: dict[int, int] | None) -> dict[str, int] | None:
    return None if not m else {str(int(k)): int(v) for k, v in m.items()}


def _warnings(
    volume: Contingency, kind: str, classes: Sequence[int] | None, gt_mapped: bool, pred_mapped: bool
) -> list[str]:
    """The one-line warnings of a result (each also logged): label sets and classes for a semantic score,
    semantic-looking ground truth for an instance score."""
    if kind == "semantic":
        found = label_set_warnings(volume, gt_mapped, pred_mapped) + absent_class_warnings(volume, classes)
    else:
        found = semantic_gt_warnings(volume)
    for w in found:
        log.warning(w)
    return found
