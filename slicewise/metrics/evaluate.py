"""``evaluate``: every metric of a prediction against ground truth, as a JSON-ready dict.

Kinds:

- ``semantic``: class label maps → per-class Dice and IoU (keys are the class ids as strings),
  their means over the scored classes, and foreground Dice (non-zero vs zero).
- ``instance``: instance / neuron label maps (0 = background) → adapted Rand error with Rand
  precision (= merge score) and recall (= split score), VOI split/merge in bits, COCO-style
  AP (``ap``, ``ap50``, ``ap75``), segmentation accuracy TP/(TP+FP+FN) at ``seg_threshold``
  (``seg_accuracy``, which some tools call AP), instance counts and foreground Dice.

The volume metrics treat a 3-D map as one volume (3-D objects, MitoEM convention);
``per_slice=True`` adds the same metrics for each z-slice alone (2-D objects) and their mean
over slices. A 2-D map is one slice. Conventions for empty cases are those of
:mod:`~slicewise.metrics.overlap`, :mod:`~slicewise.metrics.rand_voi` and
:mod:`~slicewise.metrics.ap`.

Membrane maps such as ISBI 2012 (0 = membrane, 255 = cell interior) are semantic maps: for
neuron scores, label the connected interior regions of both maps with
:func:`membranes_to_neurons` and evaluate those with ``kind="instance"`` (ground-truth 0, the
membrane, is then ignored by ARE and VOI as in the SNEMI3D / ISBI foreground-restricted scores;
fill the predicted membrane with ``fill=True``, since predicted 0 is an ordinary segment).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from slicewise.errors import InputError
from slicewise.metrics.ap import ap_from_table, instance_scores, seg_accuracy_from_table
from slicewise.metrics.contingency import Contingency, check_label_pair, contingency_table
from slicewise.metrics.overlap import foreground_dice_from_table, overlap_from_table
from slicewise.metrics.rand_voi import adapted_rand_from_table, voi_from_table
from slicewise.utils import progress, text_table, write_json

KINDS: tuple[str, ...] = ("semantic", "instance")
#: more distinct labels than this under ``kind="semantic"`` (without ``classes``) is taken as a mistake.
MAX_SEMANTIC_CLASSES = 256
#: per-slice columns shown by :func:`format_table`.
_SLICE_COLUMNS = {
    "semantic": ("mean_dice", "mean_iou", "foreground_dice"),
    "instance": ("are", "voi_split", "voi_merge", "ap50", "ap", "seg_accuracy"),
}


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
) -> dict[str, Any]:
    """Score label map ``pred`` against ``gt`` (arrays, lazy volumes or file paths).

    Args:
        pred, gt: integer label maps of equal shape, Z×Y×X or Y×X.
        kind: ``"semantic"`` or ``"instance"`` (see the module docstring).
        classes: semantic classes to score (default: every label present in either map).
        prob: instance scores for AP: a foreground-probability map shaped like ``pred``, or
            channel-first class probabilities (C, *pred.shape) where channel 0 is background
            (foreground = 1 − prob[0]; with C = 1 the single channel is the foreground).
            None scores instances by size.
        per_slice: also score each z-slice alone.
        ignore_gt_zero: drop ground-truth-0 voxels from ARE and VOI (the SNEMI3D / CREMI rule).
        seg_threshold: IoU threshold of ``seg_accuracy``.
        key: dataset key for HDF5/Zarr paths.

    Returns:
        ``{"kind", "shape", "settings", "volume": {metric: value}}`` plus, with ``per_slice``,
        ``"per_slice": [{"z": z, metric: value, ...}, ...]`` and ``"slice_mean"``; plain floats.
    """
    if kind not in KINDS:
        raise InputError(f"unknown evaluation kind {kind!r}: use one of {', '.join(KINDS)}")
    pred, gt = _depth_first(as_array_like(pred, key)), _depth_first(as_array_like(gt, key))
    check_label_pair(pred, gt)
    if len(pred.shape) != 3:
        raise InputError(f"label maps must be Z×Y×X or Y×X, got shape {tuple(pred.shape)}")
    if prob is not None and kind != "instance":
        raise InputError("probabilities only score instances for AP: pass kind='instance' (--kind instance) or drop prob")
    fg = None
    if prob is not None:
        fg = _foreground(as_array_like(prob, key), tuple(pred.shape))
    settings = {"ignore_gt_zero": bool(ignore_gt_zero), "seg_threshold": float(seg_threshold),
                "scores": "size" if fg is None else "mean foreground probability",
                "classes": None if classes is None else [int(c) for c in classes]}
    result: dict[str, Any] = {"kind": kind, "shape": [int(s) for s in pred.shape], "settings": settings}
    result["volume"] = _score(pred, gt, kind, classes, fg, ignore_gt_zero, seg_threshold)
    if per_slice:
        rows = [{"z": z, **_score(p, g, kind, classes, f, ignore_gt_zero, seg_threshold)} for z, p, g, f in _slices(pred, gt, fg)]
        result["per_slice"] = rows
        result["slice_mean"] = _mean_rows(rows)
    return result


def _slices(pred: Any, gt: Any, fg: np.ndarray | None) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray | None]]:
    """(z, pred slice, gt slice, foreground slice) for each z of Z×Y×X maps."""
    for z in progress(range(pred.shape[0]), desc="evaluate slices", total=pred.shape[0]):
        yield z, np.asarray(pred[z]), np.asarray(gt[z]), None if fg is None else fg[z]


def _score(pred: Any, gt: Any, kind: str, classes: Sequence[int] | None, fg: np.ndarray | None,
           ignore_gt_zero: bool, seg_threshold: float) -> dict[str, Any]:
    """The metrics of one volume or slice."""
    table = contingency_table(pred, gt)
    if kind == "semantic":
        return _semantic(table, classes)
    scores = instance_scores(pred, table, fg) if fg is not None else None
    kept = table.without_gt((0,)) if ignore_gt_zero else table
    out: dict[str, Any] = {}
    out.update(adapted_rand_from_table(kept))
    out.update(voi_from_table(kept))
    out.update(ap_from_table(table, scores))
    out["seg_accuracy"] = seg_accuracy_from_table(table, seg_threshold)
    out["foreground_dice"] = foreground_dice_from_table(table)
    return out


def _semantic(table: Contingency, classes: Sequence[int] | None) -> dict[str, Any]:
    if classes is None and np.union1d(table.gt_ids, table.pred_ids).size > MAX_SEMANTIC_CLASSES:
        raise InputError(
            f"more than {MAX_SEMANTIC_CLASSES} distinct labels for a semantic evaluation: "
            f"these look like instance ids (use kind='instance', --kind instance) or list the classes to score"
        )
    ov = overlap_from_table(table, classes)
    return {
        "dice": {str(c): v for c, v in ov["dice"].items()},
        "iou": {str(c): v for c, v in ov["iou"].items()},
        "mean_dice": float(np.mean(list(ov["dice"].values()))) if ov["dice"] else 1.0,
        "mean_iou": float(np.mean(list(ov["iou"].values()))) if ov["iou"] else 1.0,
        "foreground_dice": foreground_dice_from_table(table),
    }


def _mean_rows(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Mean over slices of every numeric entry (nested class dicts flattened as ``dice[c]``).

    A class absent from a slice's scores (classes inferred per slice) is averaged over the
    slices that score it.
    """
    flat = [_flatten(r) for r in rows]
    keys = [k for k in dict.fromkeys(k for f in flat for k in f) if k != "z"]
    return {k: float(np.mean([f[k] for f in flat if k in f])) for k in keys}


def _flatten(d: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update({f"{k}[{c}]": float(x) for c, x in v.items()})
        elif isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
            out[k] = v
    return out


def as_array_like(x: Any, key: str | None = None) -> Any:
    """An array-like with ``.shape``/``.dtype``: arrays and lazy volumes as they are, paths opened lazily."""
    if x is None:
        return None
    if isinstance(x, (str, os.PathLike)):
        from slicewise.data import open_volume

        return open_volume(x, key=key)
    if hasattr(x, "shape") and hasattr(x, "dtype") and hasattr(x, "__getitem__"):
        return x
    return np.asarray(x)


def _depth_first(x: Any) -> Any:
    """A Y×X image as a 1×Y×X volume (as ``open_volume`` reads 2-D files); anything else unchanged."""
    return np.asarray(x)[np.newaxis] if len(x.shape) == 2 else x


def _foreground(prob: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Foreground probability shaped like the Z×Y×X label maps (float32), from either accepted layout.

    For a single image (depth 1) Y×X and (C, Y, X) probability maps are accepted too.
    """
    pshape = tuple(prob.shape)
    if shape[0] == 1 and pshape in (shape[1:], (pshape[0], *shape[1:])) and pshape != shape:
        prob = np.asarray(prob)[np.newaxis] if pshape == shape[1:] else np.asarray(prob)[:, np.newaxis]
        pshape = tuple(prob.shape)
    if pshape == shape:
        fg = np.asarray(prob, dtype=np.float32)
    elif len(pshape) == len(shape) + 1 and pshape[1:] == shape:
        fg = np.asarray(prob[0], dtype=np.float32)
        if pshape[0] > 1:
            fg = 1.0 - fg
    else:
        raise InputError(f"probability shape {pshape} fits neither the label shape {shape} nor (C, *{shape}) channel-first")
    if not np.isfinite(fg).all() or fg.min() < 0 or fg.max() > 1:
        raise InputError("probabilities must be finite and within [0, 1]: pass softmax/sigmoid outputs, not logits")
    return fg


def membranes_to_neurons(labels: Any, interior: int | None = None, per_slice: bool = True, fill: bool = False) -> np.ndarray:
    """Neuron instance ids from a membrane map: connected components of the cell interior.

    ``interior``: the label value of cell interior (ISBI 2012: 255); None takes every non-zero
    voxel. Components use face connectivity (4-neighbours in 2-D, 6 in 3-D) so thin membranes
    with diagonal gaps still separate cells. ``per_slice`` labels each z-slice in 2-D (ids stay
    unique across slices), as the anisotropic ISBI data are scored; otherwise in 3-D.
    Membrane voxels get 0, unless ``fill`` gives each the id of the nearest cell
    (``skimage.segmentation.expand_labels``). Fill predictions before volume ARE/VOI: predicted 0
    is an ordinary segment, so an unfilled predicted membrane acts as one huge segment merging
    everything it touches (ground-truth membrane is ignored and needs no filling).
    Returns int64 Z×Y×X (or Y×X).
    """
    from scipy import ndimage
    from skimage.segmentation import expand_labels

    lab = np.asarray(labels)
    mask = lab != 0 if interior is None else lab == interior
    if not per_slice or mask.ndim == 2:
        out = ndimage.label(mask)[0].astype(np.int64)
        return expand_labels(out, distance=np.inf) if fill else out
    out = np.zeros(mask.shape, np.int64)
    offset = 0
    for z in range(mask.shape[0]):
        comp, n = ndimage.label(mask[z])
        out[z] = np.where(comp > 0, comp + offset, 0)
        if fill:
            out[z] = expand_labels(out[z], distance=np.inf)
        offset += n
    return out


def save_json(result: dict[str, Any], path: str | os.PathLike, overwrite: bool = False) -> None:
    """Write an :func:`evaluate` result as JSON (atomically)."""
    write_json(path, result, overwrite=overwrite)


def _fmt(v: Any) -> str:
    """How :func:`format_table` prints a number: integers as such, floats with 6 decimals."""
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return str(int(v))
    return f"{float(v):.6f}"


def format_table(result: dict[str, Any]) -> str:
    """A plain-text table of an :func:`evaluate` result: volume values (and slice means), then per-slice rows."""
    vol = _flatten(result["volume"])
    mean = result.get("slice_mean")
    header = ["metric", "volume"] + (["slice mean"] if mean is not None else [])
    rows = [[k, _fmt(v)] + ([_fmt(mean[k]) if k in mean else "-"] if mean is not None else []) for k, v in vol.items()]
    lines = text_table([header, *rows])
    if "per_slice" in result:
        cols = [c for c in _SLICE_COLUMNS[result["kind"]] if c in vol]
        lines += ["", *text_table([["z", *cols], *[[str(r["z"]), *[_fmt(r[c]) for c in cols]] for r in result["per_slice"]]])]
    return "\n".join(lines)
