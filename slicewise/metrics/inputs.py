"""Opening what :func:`~slicewise.metrics.evaluate.evaluate` scores: two label maps and a foreground probability.

Label maps are arrays, lazy volumes or files (:func:`open_labels`: a ``slicewise predict`` store gives its labels,
a label file its recorded ``offset``). :func:`open_pair` places the prediction in the ground truth, applies the
label maps in their one order (the membrane → neuron step of :mod:`~slicewise.metrics.neurons` first, on the whole
map with that side's label map applied before it; otherwise each label map block by block while counting) and cuts
both maps to the scored box. Windows and foreground views are :class:`~slicewise.data.io.lazy.LazyView` subclasses
indexed in box coordinates (voxels from the scored box's start), so a block task reads only its block.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from slicewise.data.grid import Box
from slicewise.data.io import open_volume
from slicewise.data.io.formats import HDF5_SUFFIXES, PREDICTION_SUFFIXES, ZARR_SUFFIXES, channel_name
from slicewise.data.io.labels import open_label_map
from slicewise.data.io.lazy import Key, LazyView
from slicewise.data.io.predictions import (
    check_probability_dtype,
    check_probability_values,
    read_prediction,
    read_prediction_probabilities,
)
from slicewise.data.labelmap import MappedLabels
from slicewise.data.roi import resolve_roi
from slicewise.errors import InputError
from slicewise.metrics.contingency import check_label_pair
from slicewise.metrics.neurons import neuron_labels

#: prediction channels that are heads, not classes (their names are no class names).
_HEAD_CHANNELS = ("boundary", "distance")


def as_array_like(x: Any, key: str | None = None) -> Any:
    """An array-like with ``.shape``/``.dtype``: arrays and lazy volumes as they are, paths opened lazily."""
    if x is None:
        return None
    if isinstance(x, (str, os.PathLike)):
        return open_volume(x, key=key)
    if hasattr(x, "shape") and hasattr(x, "dtype") and hasattr(x, "__getitem__"):
        return x
    return np.asarray(x)


def depth_first(x: Any) -> Any:
    """A Y×X image as a 1×Y×X volume (as ``open_volume`` reads 2-D files); anything else unchanged."""
    return np.asarray(x)[np.newaxis] if len(x.shape) == 2 else x


def open_labels(pred: Any, key: str | None = None) -> tuple[Any, tuple[int, int, int]]:
    """A label map opened lazily and its offset (z, y, x) in the ground truth.

    Arrays: offset 0. Files: :func:`~slicewise.data.io.labels.open_label_map` (a ``slicewise predict`` store
    gives its labels and recorded offset; a plain label file its ``offset`` attribute when it has one).
    """
    if not isinstance(pred, (str, os.PathLike)):
        return as_array_like(pred, key), (0, 0, 0)
    return open_label_map(pred, key)


def store_class_names(pred: Any) -> list[str] | None:
    """Class names a ``slicewise predict`` store records with its labels (its ``channels`` minus head names)."""
    if not isinstance(pred, (str, os.PathLike)):
        return None
    p = Path(pred)
    if p.suffix.lower() not in ZARR_SUFFIXES + HDF5_SUFFIXES or not p.exists():
        return None
    try:
        found = read_prediction(p)
        if found.labels is None:
            return None
        names = [str(c) for c in found.channels if str(c) not in _HEAD_CHANNELS]
    except Exception:  # not a predict store: no names, the ids are shown
        return None
    generic = {channel_name(i) for i in range(len(found.channels))}
    if names and set(names) <= generic:
        return None  # generic names say nothing the ids do not
    return names or None


class Window(LazyView):
    """A lazy (z, y, x) box of a 3-D array-like, indexed in box coordinates."""

    what = "label window"

    def __init__(self, array: Any, box: Sequence[slice]) -> None:
        self.array, self.box = array, tuple(box)
        self.shape = tuple(int(s.stop - s.start) for s in self.box)
        self.dtype = np.dtype(array.dtype)

    def _read(self, key: Key) -> np.ndarray:
        return np.asarray(self.array[_shifted(key, self.box)])


def _shifted(key: Key, box: Sequence[slice]) -> tuple[int | slice, ...]:
    """A box-relative key (ints, slices with concrete bounds) in the coordinates of the array the box cuts."""
    return tuple(
        int(b.start + k) if isinstance(k, int) else slice(b.start + k.start, b.start + k.stop, k.step)
        for k, b in zip(key, box)
    )


@dataclass(frozen=True)
class LabelPair:
    """Both label maps cut to the scored box (:class:`Window` s of equal shape) and where that box lies.

    ``box``: the scored box in ground-truth coordinates; ``pred_box``: the same box in prediction coordinates;
    ``pred_shape``: the whole prediction's (z, y, x) shape; ``offset``: the prediction's start in the ground truth.
    """

    pred: Window
    gt: Window
    box: Box
    pred_box: Box
    pred_shape: tuple[int, ...]
    offset: tuple[int, int, int]


def open_pair(
    pred: Any,
    gt: Any,
    key: str | None = None,
    *,
    roi: Box | Sequence[slice] | None = None,
    label_map: dict[int, int] | None = None,
    pred_label_map: dict[int, int] | None = None,
    components: str = "none",
    fill: bool = False,
) -> LabelPair:
    """Open ``pred`` and ``gt`` (see :func:`~slicewise.metrics.evaluate.evaluate`), check them and cut both to
    the scored box. A side named by ``components`` is read whole, its label map applied, and its connected
    components labeled (:func:`~slicewise.metrics.neurons.neuron_labels`); the other sides' label maps are
    applied lazily, block by block."""
    pred_l, offset = open_labels(pred, key)
    pred_a, gt_a = depth_first(pred_l), depth_first(as_array_like(gt, key))
    if components in ("pred", "both"):
        pred_a = neuron_labels(pred_a, pred_label_map, "predicted labels", "--pred-label-map", fill=fill)
        pred_label_map = None
    if components in ("gt", "both"):
        gt_a = neuron_labels(gt_a, label_map, "ground-truth labels", "--label-map")
        label_map = None
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
    pred_shape = tuple(int(s) for s in pred_a.shape)
    box = scored_box(pred_shape, tuple(gt_a.shape), offset, roi)
    pred_box = tuple(slice(s.start - o, s.stop - o) for s, o in zip(box, offset))
    windows = Window(pred_a, pred_box), Window(gt_a, box)
    return LabelPair(*windows, box, pred_box, pred_shape, offset)  # type: ignore[arg-type]


def scored_box(
    pred_shape: tuple[int, ...],
    gt_shape: tuple[int, ...],
    offset: tuple[int, int, int],
    roi: Box | Sequence[slice] | None,
) -> Box:
    """The scored box in ground-truth coordinates: the prediction's extent at ``offset``, cut to ``roi``."""
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
    return box  # type: ignore[return-value]


def _check_fg(fg: np.ndarray) -> np.ndarray:
    if not np.isfinite(fg).all() or (fg.size and (fg.min() < 0 or fg.max() > 1)):
        raise InputError("probabilities must be finite and within [0, 1]: pass softmax/sigmoid outputs, not logits")
    return fg


class ArrayForeground(LazyView):
    """Foreground probability of the scored box from an in-memory probability array, in box coordinates.

    The array is shaped like the prediction (a foreground map) or channel-first ``(C, *shape)``: channel 0 is
    background (foreground = 1 − prob[0]), and with C = 1 the single channel is the foreground.
    """

    what = "foreground probability"

    def __init__(self, prob: Any, shape: tuple[int, ...], box: Sequence[slice]) -> None:
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
        self.shape = tuple(int(s.stop - s.start) for s in self.box)
        self.dtype = np.dtype(np.float32)

    def _read(self, key: Key) -> np.ndarray:
        r = _shifted(key, self.box)
        if self.channels == 0:
            return _check_fg(np.asarray(self.prob[r], dtype=np.float32))
        fg = np.asarray(self.prob[(0, *r)], dtype=np.float32)
        return _check_fg(1.0 - fg if self.channels > 1 else fg)


class FileForeground(LazyView):
    """Foreground probability of the scored box read lazily from a ``predict`` output, in box coordinates.

    Any layout :func:`~slicewise.data.io.read_prediction` reads; the file is reopened in each dask worker.
    """

    what = "foreground probability"

    def __init__(self, path: str, box: Sequence[slice], offset: Sequence[int]) -> None:
        self.path = path
        self.shape = tuple(int(b.stop - b.start) for b in box)
        self.dtype = np.dtype(np.float32)
        stored = read_prediction_probabilities(path)
        shape = tuple(int(n) for n in stored.probabilities.shape[1:])
        shift = [int(o) - int(so) for o, so in zip(offset, stored.offset)]  # label coords → stored coords
        self.box = tuple(slice(b.start + d, b.stop + d) for b, d in zip(box, shift))
        if any(b.start < 0 or b.stop > n for b, n in zip(self.box, shape)):
            raise InputError(
                f"probabilities {path} (shape {shape} at offset {tuple(stored.offset)}) do not cover the "
                f"scored labels: pass the probabilities the labels were made from"
            )
        self._src: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_src": None}

    def _read(self, key: Key) -> np.ndarray:
        if self._src is None:
            self._src = read_prediction_probabilities(self.path).probabilities
        p = self._check(np.asarray(self._src[(slice(None), *_shifted(key, self.box))], dtype=np.float32))
        return (1.0 - p[0]) if len(p) > 1 else p[0]

    def _check(self, p: np.ndarray) -> np.ndarray:
        return check_probability_values(p, self.path, self._src.source_dtype)


def foreground_view(prob: Any, key: str | None, pair: LabelPair) -> LazyView:
    """The foreground probability of ``pair``'s scored box from ``prob`` (see ``evaluate``), a picklable view."""
    if isinstance(prob, (str, os.PathLike)):
        p = Path(prob)
        if p.suffix.lower() in PREDICTION_SUFFIXES:  # what predict writes
            return FileForeground(os.fspath(p), pair.pred_box, pair.offset)
        prob = as_array_like(prob, key)
    return ArrayForeground(prob if hasattr(prob, "shape") else np.asarray(prob), pair.pred_shape, pair.pred_box)
