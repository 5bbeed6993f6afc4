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
:mod:`~slicewise.metrics.ap`, except that a semantic class in neither map is never scored: not by
default (only labels present are), and a listed one (``classes``) is ``None`` with a one-line warning
(:func:`absent_class_warnings`) rather than the empty rule's 1. Negative class ids are refused.

Membrane maps such as ISBI 2012 (0 = membrane, 255 = cell interior) are semantic maps: for
neuron scores, label the connected interior regions of both maps with
:func:`membranes_to_neurons` and evaluate those with ``kind="instance"`` (ground-truth 0, the
membrane, is then ignored by ARE and VOI as in the SNEMI3D / ISBI foreground-restricted scores;
fill the predicted membrane with ``fill=True``, since predicted 0 is an ordinary segment).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from slicewise.data.labelmap import MappedLabels
from slicewise.data.roi import Roi
from slicewise.errors import InputError
from slicewise.metrics.ap import ap_from_table, seg_accuracy_from_table
from slicewise.metrics.contingency import Contingency, block_grid, check_label_pair
from slicewise.metrics.overlap import foreground_dice_from_table, overlap_from_table
from slicewise.metrics.rand_voi import adapted_rand_from_table, voi_from_table
from slicewise.utils import text_table
from slicewise.utils.inputs import check_input_path
from slicewise.utils.table import num

log = logging.getLogger(__name__)

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
    *,
    roi: Roi | Sequence[slice] | None = None,
    block: Sequence[int] | None = None,
    dask: str | None = None,
    label_map: dict[int, int] | None = None,
    pred_label_map: dict[int, int] | None = None,
    class_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Score label map ``pred`` against ``gt`` (arrays, lazy volumes or file paths), block by block.

    Args:
        pred, gt: integer label maps (ids >= 0; uint64 when the ids fit int64) of equal shape,
            Z×Y×X or Y×X. A prediction file that records an ``offset`` (labels of a ROI, as
            ``slicewise segment --roi`` writes them) is placed at that offset in ``gt``.
        kind: ``"semantic"`` or ``"instance"`` (see the module docstring).
        classes: semantic classes to score (default: every label present in either map). Negative ids are
            refused in one line; a listed class in neither map is not scored (``None``, ``n/a``; see
            :func:`absent_class_warnings`).
        prob: instance scores for AP: a foreground-probability map shaped like ``pred``, or
            channel-first class probabilities (C, *pred.shape) where channel 0 is background
            (foreground = 1 − prob[0]; with C = 1 the single channel is the foreground), or a
            probability file from ``slicewise predict`` (its ``offset`` is honoured). None scores
            instances by size.
        per_slice: also score each z-slice alone.
        ignore_gt_zero: drop ground-truth-0 voxels from ARE and VOI (the SNEMI3D / CREMI rule).
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
            :func:`format_table` prints ``dice[membrane]``; the JSON keeps the ids); default the channel names a
            ``slicewise predict`` label store records (the model's ``class_names``).

    A semantic evaluation whose prediction and ground-truth label sets share no value (prediction {0, 1}
    against ground truth {0, 255}: every Dice is 0) logs a one-line warning and lists it under
    ``"warnings"`` in the result. So does an instance evaluation against ground truth that looks semantic
    (:func:`semantic_gt_warnings`: two values, one covering most of the voxels, e.g. ISBI's 0/255 membranes),
    which names the fix (``--components gt``, :func:`membranes_to_neurons`).

    Returns:
        ``{"kind", "shape", "settings", "volume": {metric: value}}`` plus, with ``per_slice``,
        ``"per_slice": [{"z": z, metric: value, ...}, ...]`` (z in ground-truth coordinates) and
        ``"slice_mean"``; plain floats. ``"offset"`` is the scored box's start in the ground truth.
    """
    from slicewise.metrics.blockwise import (
        DEFAULT_BLOCK,
        BlockTask,
        count_blocks,
        tables,
    )

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
    pred_l, offset = open_labels(pred, key)
    pred_a, gt_a = _depth_first(pred_l), _depth_first(as_array_like(gt, key))
    if len(pred_a.shape) != len(gt_a.shape) or not any(offset):
        check_label_pair(pred_a, gt_a)
    else:
        check_label_pair(pred_a, pred_a)
        check_label_pair(gt_a, gt_a)
    if len(pred_a.shape) != 3:
        raise InputError(f"label maps must be Z×Y×X or Y×X, got shape {tuple(pred_a.shape)}")
    if label_map:
        gt_a = MappedLabels(gt_a, label_map, "ground-truth labels", "--label-map")
    if pred_label_map:
        pred_a = MappedLabels(pred_a, pred_label_map, "predicted labels", "--pred-label-map")
    box = _box(tuple(pred_a.shape), tuple(gt_a.shape), offset, roi)
    pred_box = tuple(slice(s.start - o, s.stop - o) for s, o in zip(box, offset))
    p_view, g_view = _Window(pred_a, pred_box), _Window(gt_a, box)
    if prob is not None and kind != "instance":
        raise InputError(
            "probabilities only score instances for AP: pass kind='instance' (--kind instance) or drop prob"
        )
    fg = None if prob is None else _foreground_reader(prob, key, tuple(pred_a.shape), pred_box, offset)
    blk = tuple(int(b) for b in (block if block is not None else DEFAULT_BLOCK))
    if len(blk) != 3 or min(blk) < 1:
        raise InputError(f"block {tuple(blk)} must be three integers >= 1 (Z,Y,X)")
    regions = block_grid(p_view.shape, blk)
    counts = count_blocks(BlockTask(p_view, g_view, fg, per_slice), regions, dask)
    volume, scores, slices = tables(counts, fg is not None)
    settings = {
        "label_map": _jsonable_map(label_map),
        "pred_label_map": _jsonable_map(pred_label_map),
        "ignore_gt_zero": bool(ignore_gt_zero),
        "seg_threshold": float(seg_threshold),
        "scores": "size" if fg is None else "mean foreground probability",
        "classes": None if classes is None else [int(c) for c in classes],
    }
    result: dict[str, Any] = {"kind": kind, "shape": [int(s) for s in p_view.shape], "settings": settings}
    if any(s.start for s in box):
        result["offset"] = [int(s.start) for s in box]
    result["volume"] = _score(volume, scores, kind, classes, ignore_gt_zero, seg_threshold)
    names = list(class_names) if class_names else _store_class_names(pred)
    if kind == "semantic" and names:
        present = {int(k) for k in result["volume"].get("dice", {})}
        result["class_names"] = {str(i): str(n) for i, n in enumerate(names) if i in present}
    warnings = label_set_warnings(volume, kind, bool(label_map), bool(pred_label_map))
    warnings += absent_class_warnings(volume, classes) if kind == "semantic" else []
    warnings += semantic_gt_warnings(volume, kind)
    if warnings:
        result["warnings"] = warnings
        for w in warnings:
            log.warning(w)
    if per_slice:
        rows = [
            {"z": int(box[0].start + z), **_score(t, sc, kind, classes, ignore_gt_zero, seg_threshold)}
            for z, (t, sc) in slices.items()
        ]
        result["per_slice"] = rows
        result["slice_mean"] = _mean_rows(rows)
    return result


def _box(
    pred_shape: tuple[int, ...],
    gt_shape: tuple[int, ...],
    offset: tuple[int, int, int],
    roi: Roi | Sequence[slice] | None,
) -> Roi:
    """The scored box in ground-truth coordinates: the prediction's extent at ``offset``, cut to ``roi``."""
    from slicewise.data.roi import resolve_roi

    cover = tuple(slice(o, o + n) for o, n in zip(offset, pred_shape))
    if any(c.stop > n for c, n in zip(cover, gt_shape)):
        raise InputError(
            f"the prediction (shape {pred_shape} at offset {offset}) reaches outside the ground truth "
            f"(shape {gt_shape}): check the files or the recorded offset"
        )
    if roi is None:
        return cover  # type: ignore[return-value]
    box = resolve_roi(roi, gt_shape)
    for axis, (b, c) in enumerate(zip(box, cover)):
        if b.start < c.start or b.stop > c.stop:
            name = "zyx"[axis]
            raise InputError(
                f"the {name} range {b.start}:{b.stop} is not inside the prediction, which covers "
                f"{c.start}:{c.stop} of the ground truth: give a range inside it"
            )
    return box


def _jsonable_map(m: dict[int, int] | None) -> dict[str, int] | None:
    return None if not m else {str(int(k)): int(v) for k, v in m.items()}


def _ids_text(ids: np.ndarray) -> str:
    vals = [int(v) for v in ids[:6]]
    return "{" + ", ".join(map(str, vals)) + (", ..." if ids.size > 6 else "") + "}"


def absent_class_warnings(table: Contingency, classes: Sequence[int] | None) -> list[str]:
    """One-line warning naming the listed ``classes`` that occur in neither map of the scored volume (table).

    Decision: a class in neither map is not scored, listed or not: by default evaluate scores only the
    labels present, and a listed absent class is reported as ``None`` (JSON ``null``, ``n/a`` in the
    table) and left out of the means (:func:`_semantic`), never as the Dice/IoU 1 of the empty rule of
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
        f"nor the ground truth (labels {_ids_text(present)}): not scored (n/a); check the class ids or --label-map"
    ]


def label_set_warnings(table: Contingency, kind: str, gt_mapped: bool = False, pred_mapped: bool = False) -> list[str]:
    """One-line warnings about the label sets of a semantic evaluation: none shared by prediction and truth."""
    if kind != "semantic" or table.gt_ids.size == 0 or table.pred_ids.size == 0:
        return []
    if np.intersect1d(table.gt_ids, table.pred_ids).size:
        return []
    fix = (
        "check --label-map / --pred-label-map"
        if gt_mapped or pred_mapped
        else f"map them onto each other, e.g. --label-map {int(table.gt_ids[-1])}:{int(table.pred_ids[-1])}"
    )
    return [
        f"prediction labels {_ids_text(table.pred_ids)} and ground-truth labels {_ids_text(table.gt_ids)} "
        f"share no value, so every Dice/IoU is 0: {fix}"
    ]


SEMANTIC_GT_SHARE = 0.5
"""An instance ground truth with two values, one of them on more than this share of the voxels, looks semantic."""


def semantic_gt_warnings(table: Contingency, kind: str) -> list[str]:
    """One-line warning when instances are scored against ground truth that looks semantic: exactly two
    values, one of them covering most of the voxels (ISBI's 0/255 membrane map, a binary mask). Instance
    metrics would then count one (or two) ground-truth objects; the fix is the connected components."""
    if kind != "instance" or table.gt_ids.size != 2 or table.n_voxels == 0:
        return []
    big = int(np.argmax(table.gt_sizes))
    share = float(table.gt_sizes[big]) / table.n_voxels
    if share <= SEMANTIC_GT_SHARE:
        return []
    return [
        f"the ground truth holds only the values {_ids_text(table.gt_ids)} ({int(table.gt_ids[big])} on "
        f"{100 * share:.0f}% of the voxels): it looks semantic, so instance scores count one object; label its connected components "
        f"with --components gt (Python: membranes_to_neurons(gt))"
    ]


class _Window:
    """A lazy (z, y, x) box of a 3-D array-like; indexed by box-relative regions (or a z index)."""

    def __init__(self, array: Any, box: Sequence[slice]) -> None:
        self.array, self.box = array, tuple(box)
        self.shape = tuple(int(s.stop - s.start) for s in self.box)
        self.dtype = array.dtype

    def __getitem__(self, region: Any) -> np.ndarray:
        if not isinstance(region, tuple):
            region = (region,)
        region = tuple(region) + (slice(None),) * (3 - len(region))
        out = []
        for r, b, n in zip(region, self.box, self.shape):
            if isinstance(r, (int, np.integer)):
                out.append(int(b.start + r))
            else:
                start, stop, _ = r.indices(n)
                out.append(slice(b.start + start, b.start + stop))
        return np.asarray(self.array[tuple(out)])


def open_labels(pred: Any, key: str | None = None) -> tuple[Any, tuple[int, int, int]]:
    """A label map opened lazily and its offset (z, y, x) in the ground truth.

    Arrays: offset 0. Files: a ``slicewise predict`` store (NGFF / Zarr group or HDF5 with a
    ``labels`` array, read with :func:`slicewise.infer.store.read_prediction`) gives its labels and
    recorded offset; a plain label file (``slicewise segment`` output, any volume) its ``offset``
    attribute (Zarr / HDF5 attribute, TIFF metadata) when it has one.
    """
    if not isinstance(pred, (str, os.PathLike)):
        return as_array_like(pred, key), (0, 0, 0)
    p = check_input_path(pred, "labels")  # a FIFO / device / link loop: refused before tifffile or h5py open it
    sfx = p.suffix.lower()
    found: Any = None
    try:
        if sfx == ".zarr" and key is None and p.exists():
            import zarr

            node = zarr.open(str(p), mode="r")
            if isinstance(node, zarr.Group):
                return _store_labels(p)
            found = node.attrs.get("offset")
        elif sfx in (".h5", ".hdf5", ".hdf") and p.exists():
            import h5py

            with h5py.File(p, "r") as f:
                if key is None and ("labels" in f or "probabilities" in f):
                    found = "store"
                else:
                    ds = f[key] if key and key in f else f.get("data")
                    found = ds.attrs.get("offset") if ds is not None else None
            if found == "store":
                return _store_labels(p)
        elif sfx in (".tif", ".tiff") and p.exists():
            import tifffile

            from slicewise.data.io import tifffile_warnings

            with tifffile_warnings(), tifffile.TiffFile(p) as tif:
                md = (tif.shaped_metadata or [{}])[0] or {}
            meta = md.get("slicewise") or {}
            found = md.get("offset") or (meta.get("offset") if isinstance(meta, dict) else None)
    except (OSError, KeyError, ValueError, TypeError):
        found = None  # an unreadable file is reported by the reader below, in one line
    return as_array_like(pred, key), _offset(found, p)


def _store_class_names(pred: Any) -> list[str] | None:
    """Class names a ``slicewise predict`` store records with its labels (its ``channels`` minus head names)."""
    if not isinstance(pred, (str, os.PathLike)):
        return None
    from pathlib import Path

    p = Path(pred)
    if p.suffix.lower() not in (".zarr", ".h5", ".hdf5", ".hdf") or not p.exists():
        return None
    try:
        from slicewise.infer.store import read_prediction

        found = read_prediction(p)
        if found.labels is None:
            return None
        names = [str(c) for c in found.channels if str(c) not in ("boundary", "distance")]
    except Exception:  # not a predict store: no names, the ids are shown
        return None
    if names and all(re.fullmatch(r"class\d+", n) for n in names):
        return None  # generic names say nothing the ids do not
    return names or None


def _store_labels(p: Any) -> tuple[Any, tuple[int, int, int]]:
    from slicewise.infer.store import read_prediction

    pred = read_prediction(p)
    if pred.labels is None:
        raise InputError(
            f"{p} holds probabilities, not labels: make instance labels with `slicewise segment {p} labels.zarr` "
            f"(or predict with --output-kind labels) and evaluate those"
        )
    return pred.labels, tuple(int(v) for v in pred.offset)  # type: ignore[return-value]


def _offset(found: Any, p: Any) -> tuple[int, int, int]:
    if found is None:
        return (0, 0, 0)
    try:  # an attribute of a file: untrusted, any type
        if isinstance(found, (str, bytes)):
            import json

            found = json.loads(found)
        vals = [int(v) for v in found]
    except (TypeError, ValueError, OverflowError):
        raise InputError(
            f"{p} records an offset attribute {str(found)[:40]!r} that is not three voxel counts (z, y, x): "
            f"fix or remove the attribute"
        ) from None
    if len(vals) != 3 or min(vals) < 0:
        raise InputError(f"{p} records offset {vals}: expected three voxel counts >= 0 (z, y, x)")
    return tuple(vals)  # type: ignore[return-value]


def _score(
    table: Contingency,
    scores: np.ndarray | None,
    kind: str,
    classes: Sequence[int] | None,
    ignore_gt_zero: bool,
    seg_threshold: float,
) -> dict[str, Any]:
    """The metrics of one volume or slice from its table (and instance scores)."""
    if kind == "semantic":
        return _semantic(table, classes)
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


def _mean_rows(rows: list[dict[str, Any]]) -> dict[str, float | None]:
    """Mean over slices of every numeric entry (nested class dicts flattened as ``dice[c]``).

    A class absent from a slice's scores (classes inferred per slice), or not scored there (``None``: a
    listed class in neither of the slice's maps), is averaged over the slices that score it; ``None``
    when no slice does.
    """
    flat = [_flatten(r) for r in rows]
    keys = [k for k in dict.fromkeys(k for f in flat for k in f) if k != "z"]
    means = {k: [f[k] for f in flat if f.get(k) is not None] for k in keys}
    return {k: float(np.mean(v)) if v else None for k, v in means.items()}


def _flatten(d: dict[str, Any], names: dict[str, str] | None = None) -> dict[str, float | None]:
    """Numbers of a result, nested class dicts as ``dice[c]``; ``None`` (a class not scored) is kept."""
    out: dict[str, float | None] = {}
    names = names or {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update({f"{k}[{names.get(str(c), c)}]": None if x is None else float(x) for c, x in v.items()})
        elif v is None and k.startswith("mean_"):
            out[k] = None
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


def _check_fg(fg: np.ndarray) -> np.ndarray:
    if not np.isfinite(fg).all() or (fg.size and (fg.min() < 0 or fg.max() > 1)):
        raise InputError("probabilities must be finite and within [0, 1]: pass softmax/sigmoid outputs, not logits")
    return fg


class _ArrayForeground:
    """Foreground probability of a box-relative region from an in-memory probability array."""

    def __init__(self, prob: Any, shape: tuple[int, ...], box: Sequence[slice]) -> None:
        from slicewise.infer.store import check_probability_dtype

        try:
            dtype = np.dtype(prob.dtype)
        except TypeError:  # e.g. a torch tensor's dtype
            dtype = np.asarray(prob).dtype
        check_probability_dtype(dtype, "the probability map")  # complex is refused, never made real
        pshape = tuple(prob.shape)
        if shape[0] == 1 and pshape in (shape[1:], (pshape[0], *shape[1:])) and pshape != shape:
            prob = np.asarray(prob)[np.newaxis] if pshape == shape[1:] else np.asarray(prob)[:, np.newaxis]
            pshape = tuple(prob.shape)
        if pshape == shape:
            self.channels = 0
        elif len(pshape) == len(shape) + 1 and pshape[1:] == shape:
            self.channels = pshape[0]
        else:
            raise InputError(
                f"probability shape {pshape} fits neither the label shape {shape} nor (C, *{shape}) channel-first"
            )
        self.prob, self.box = prob, tuple(box)

    def __call__(self, region: Sequence[slice]) -> np.ndarray:
        r = tuple(slice(b.start + s.start, b.start + s.stop) for s, b in zip(region, self.box))
        if self.channels == 0:
            return _check_fg(np.asarray(self.prob[r], dtype=np.float32))
        fg = np.asarray(self.prob[(0, *r)], dtype=np.float32)
        return _check_fg(1.0 - fg if self.channels > 1 else fg)


class _FileForeground:
    """Foreground probability read lazily from a ``predict`` output (reopened in each dask worker)."""

    def __init__(
        self, path: str, key: str | None, shape: tuple[int, ...], box: Sequence[slice], offset: Sequence[int]
    ) -> None:
        self.path, self.key = path, key
        src = self._source()
        shift = [int(o) - int(so) for o, so in zip(offset, src.offset)]  # label coords → stored coords
        self.box = tuple(slice(b.start + d, b.stop + d) for b, d in zip(box, shift))
        if any(b.start < 0 or b.stop > n for b, n in zip(self.box, src.shape)):
            raise InputError(
                f"probabilities {path} (shape {src.shape} at offset {tuple(src.offset)}) do not cover the "
                f"scored labels: pass the probabilities the labels were made from"
            )
        self._src: Any = None

    def _source(self) -> Any:
        from slicewise.infer.instances import open_probabilities

        return open_probabilities(self.path, self.key)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_src": None}

    def __call__(self, region: Sequence[slice]) -> np.ndarray:
        if self._src is None:
            self._src = self._source()
        r = tuple(slice(b.start + s.start, b.start + s.stop) for s, b in zip(region, self.box))
        p = self._src.read(r)
        return (1.0 - p[0]) if len(p) > 1 else p[0]


def _foreground_reader(
    prob: Any, key: str | None, shape: tuple[int, ...], box: Sequence[slice], offset: Sequence[int]
) -> Any:
    """A picklable ``region → foreground probability`` for box-relative regions of the label maps."""
    if isinstance(prob, (str, os.PathLike)):
        from pathlib import Path

        p = Path(prob)
        if p.suffix.lower() in (".zarr", ".h5", ".hdf5", ".hdf", ".tif", ".tiff"):  # what predict writes
            return _FileForeground(os.fspath(p), None, shape, box, offset)
        prob = as_array_like(prob, key)
    return _ArrayForeground(prob if hasattr(prob, "shape") else np.asarray(prob), shape, box)


def membranes_to_neurons(
    labels: Any, interior: int | None = None, per_slice: bool = True, fill: bool = False
) -> np.ndarray:
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
    from skimage.segmentation import expand_labels

    from slicewise.infer.blockwise_labels import label

    lab = np.asarray(labels)
    mask = lab != 0 if interior is None else lab == interior
    if mask.ndim == 2:
        out = label(mask[None])[0].astype(np.int64)
        return expand_labels(out, distance=np.inf) if fill else out
    out = label(mask, per_slice=per_slice).astype(np.int64)
    if fill:
        for z in range(out.shape[0]) if per_slice else [slice(None)]:
            out[z] = expand_labels(out[z], distance=np.inf)
    return out


def _fmt(v: Any) -> str:
    """How :func:`format_table` prints a number: :func:`slicewise.utils.table.num` (4 significant digits,
    ``1.4e-05`` rather than ``0.0000``); the JSON keeps full precision."""
    return num(v)


def format_table(result: dict[str, Any]) -> str:
    """A plain-text table of an :func:`evaluate` result: volume values (and slice means), then per-slice rows."""
    vol = _flatten(result["volume"], result.get("class_names"))
    mean = result.get("slice_mean")
    header = ["metric", "volume"] + (["slice mean"] if mean is not None else [])
    if mean is not None and result.get("class_names"):
        names = result["class_names"]
        mean = {
            re.sub(r"\[(\d+)\]$", lambda m: f"[{names[m[1]]}]" if m[1] in names else m[0], k): v
            for k, v in mean.items()
        }
    rows = [[k, _fmt(v)] + ([_fmt(mean[k]) if k in mean else "-"] if mean is not None else []) for k, v in vol.items()]
    lines = text_table([header, *rows])
    if "per_slice" in result:
        cols = [c for c in _SLICE_COLUMNS[result["kind"]] if c in vol]
        lines += [
            "",
            *text_table([["z", *cols], *[[str(r["z"]), *[_fmt(r[c]) for c in cols]] for r in result["per_slice"]]]),
        ]
    return "\n".join(lines)
