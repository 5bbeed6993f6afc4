"""Instances from probabilities: connected components or seeded watershed, 2-D per slice or 3-D, block-wise.

Input: probabilities ``(C, Z, Y, X)`` as written by :func:`slicewise.infer.predict` (channel names
``class0 … classN-1`` then head names such as ``boundary`` / ``distance``), a single foreground map
``(Z, Y, X)`` or ``(Y, X)`` (a 2-D map is one slice: the labels are ``(1, Y, X)``), or a path to such
a file (read lazily, block by block: ``.zarr`` / ``.h5`` with key ``probabilities`` by default,
channel-first, channel names from the ``channels`` attribute; ``.tif`` as ``predict`` writes it,
channel-last ``Z×Y×X×C``, or a ``Z×Y×X`` / ``Y×X`` foreground map). Files and arrays are read alike
(:func:`slicewise.infer.store.probability_view`): complex data and other ranks are refused in one line
naming the dtype or shape. Every block read is checked: values must be finite, and every channel
except a distance channel within [0, 1] (a raw image or logits is refused in one line; make
probabilities with ``slicewise predict``). Channels are chosen by index or by name:

- foreground (:func:`choose_foreground`): ``foreground_channel`` (index or name); else the only channel;
  else, with channel names (the model's ``class_names`` that ``predict`` records, then head names such
  as ``boundary`` / ``distance``), the single class channel that is not the background (the class named
  ``background`` / ``bg`` / ``class0``, else the first class): ``membrane`` of ``[background, membrane]``;
  with several such classes, or without names, ``1 − P(channel 0)`` (the union of every non-background
  class; a multi-class model's background is its class 0). The choice is in
  :attr:`Segmented.foreground`, and ``slicewise segment`` prints it on stderr.
- boundary: ``boundary_channel``; default the channel named ``boundary``.
- distance: ``distance_channel``; default the channel named ``distance``, else the Euclidean
  distance transform of the foreground mask (per slice when ``per_slice``).

Channel indices are 0..C-1 (:func:`_index`); negative indices are refused, not counted from the end.

Modes (``fg = P_fg > foreground_threshold`` is the mask in every mode):

- ``cc``: connected components of ``fg`` (``connectivity`` 1 = faces, as ``scipy.ndimage.label``'s
  default; 2 adds edges, 3 corners).
- ``watershed`` with ``use="boundary"``: seeds are connected components of
  ``P_fg > seed_threshold`` (default: ``foreground_threshold``) and ``boundary < boundary_threshold``;
  flooded on the boundary map inside ``fg`` (PyTorch Connectomics' ``bc_watershed`` scheme).
- ``watershed`` with ``use="distance"``: seeds are ``distance > seed_threshold`` (a distance >= 0) if
  given, else the local maxima of the distance map (``min_distance`` apart); flooded on ``−distance`` inside ``fg``.

In watershed modes a foreground component without any seed keeps its own id rather than being
dropped. ``per_slice=True`` labels each slice in 2-D (ids unique across slices); otherwise 3-D.
Objects smaller than ``min_size`` voxels (pixels per slice object when ``per_slice``) are removed.
The result is int32 ``(Z, Y, X)``, 0 = background.

Ids are numbered ``1…N`` by a fixed rule: in ``cc`` mode by each object's first voxel in C order
(z, then y, then x), which is how ``scipy.ndimage.label`` numbers them; in watershed mode the
seeded objects first, in the order of their seed's first voxel, then the unseeded components in
the order of their first voxel; with ``per_slice`` slice by slice (seeded then unseeded within
each slice). A size filter keeps the order and closes the gaps.

Block-wise processing (:func:`segment_to`, ``slicewise segment --block Z,Y,X``): memory is bounded
by a block plus tables with one entry per object or label pair, never the volume.

- ``cc`` is exact for any block shape: blocks are labelled alone, joined by union-find over the
  label pairs that touch across block faces, and relabelled in one global pass
  (:mod:`slicewise.infer.blockwise_labels`); the result equals ``scipy.ndimage.label`` of the whole
  mask id for id.
- ``watershed``: seeds are labelled block-wise exactly like ``cc`` (global seed ids), then each
  block floods its core reading ``halo`` voxels of context on every side (surface, mask, seeds),
  then unseeded components are labelled block-wise. Where it can differ from flooding the whole
  volume: a voxel whose flooding path from its seed leaves the block core ± halo, or whose
  competing seed lies outside it, can get another seed's id or none (then it joins an unseeded
  component); with ``use="distance"`` and no distance channel the distance transform and its local
  maxima are computed within the core ± halo, so they differ for objects cut by that region.
  Plateaus of the surface are flooded in C order (:func:`tie_broken`), in memory too, so equal
  values cannot make the result depend on the block cut.
  It is identical to whole-volume watershed when every foreground component (of ``fg``) that
  reaches a block extends less than the halo beyond that block's core (e.g. the halo exceeds the
  largest object's extent; add ``min_distance`` for local-maximum seeds), and for a single block.
  ``tests/infer/test_instances_blockwise.py`` tests both and measures agreement otherwise.

Ranges: ``roi`` (``--z`` / ``--roi``) selects a box of the probability map in the coordinates of the
source volume (a prediction made over a ROI records its ``offset``, which is subtracted); the result
is the segmentation of that box alone, as if the file had been cut to it (objects are not followed
outside it, halos stop at its edges), and the written labels record the box's ``offset``.

Resume: :func:`segment_to` keeps each pass's scratch arrays, per-block records and results next to the
output (:mod:`slicewise.infer.resume`), so an interrupted run continues where it stopped when rerun.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from scipy import ndimage as ndi

from slicewise.data.roi import Roi, resolve_roi
from slicewise.errors import InputError
from slicewise.infer.blockwise_labels import (
    Components,
    Region,
    block_regions,
    filter_table,
    label_blocks,
    relabel_blocks,
    structure_for,
)
from slicewise.infer.resume import BlockLog, JobState, state_folder
from slicewise.infer.store import PROBABILITY_HINT, probability_view
from slicewise.utils import progress
from slicewise.utils.signals import resume_hint

Mode = Literal["cc", "watershed"]
Use = Literal["boundary", "distance"]
MODES: tuple[str, ...] = ("cc", "watershed")
USES: tuple[str, ...] = ("boundary", "distance")
#: block shape (z, y, x) of :func:`segment_to` when none is given: volumes up to this size are one block.
DEFAULT_BLOCK: tuple[int, int, int] = (64, 1024, 1024)
#: watershed context (z, y, x voxels) read around each block when none is given.
DEFAULT_HALO: tuple[int, int, int] = (8, 64, 64)
_HINT = PROBABILITY_HINT  # names no command: segment and evaluate --prob read probabilities alike

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProbabilitySource:
    """Lazy probabilities: ``read(region)`` → float32 ``(C, bz, by, bx)`` of a (z, y, x) region of ``shape``.

    ``offset`` (z, y, x) is where the stored array starts in the source volume (a ROI prediction).
    """

    read_raw: Callable[[Region], np.ndarray]
    shape: tuple[int, int, int]
    channels: int
    names: list[str] | None
    offset: tuple[int, int, int]
    label: str
    dtype: str = "float32"
    """The stored dtype (``read_raw`` returns float32), named when values are refused."""

    def read(
        self, region: Region, probabilities: Sequence[int] | None = None, finite: Sequence[int] = ()
    ) -> np.ndarray:
        """The region as float32 ``(C, bz, by, bx)``, refused in one line unless the channels used are valid.

        ``probabilities`` (default: all) must be finite and in [0, 1]; ``finite`` (e.g. a distance
        channel) only finite. Other channels (raw heads that are not used) are not checked.
        """
        block = np.asarray(self.read_raw(region)).astype(np.float32, copy=False)
        idx = list(range(len(block))) if probabilities is None else sorted(set(probabilities))
        probs = block[idx]
        if not (np.isfinite(probs).all() and np.isfinite(block[list(finite)]).all()):
            raise InputError(f"{self.label} holds NaN or Inf values, not probabilities in [0, 1]: {_HINT}")
        if probs.size and (probs.min() < 0 or probs.max() > 1):
            raise InputError(
                f"{self.label} holds values in [{float(probs.min()):g}, {float(probs.max()):g}] ({self.dtype}), "
                f"not probabilities in [0, 1] (a raw image or logits?): {_HINT}"
            )
        return block


def _source(view: Any, names: list[str] | None, offset: Sequence[int], label: str) -> ProbabilitySource:
    """A :class:`ProbabilitySource` of a ``(C, Z, Y, X)`` view from :func:`~slicewise.infer.store.probability_view`."""
    channels, *shape = (int(s) for s in view.shape)
    return ProbabilitySource(
        lambda r: np.asarray(view[(slice(None), *r)]),
        tuple(shape),
        channels,
        names,  # type: ignore[arg-type]
        tuple(int(o) for o in offset),
        label,
        str(view.source_dtype),
    )  # type: ignore[arg-type]


def open_probabilities(path: str | os.PathLike, key: str | None = None) -> ProbabilitySource:
    """Open a probability map written by ``predict`` lazily, through :func:`slicewise.infer.store.read_prediction`.

    Every layout ``predict`` writes (NGFF / older Zarr groups, HDF5, TIFF; uint8 / float16 stores
    de-quantised) with its channel names and ``offset``; a plain float (Z, Y, X) map is one channel and a
    (Y, X) map one slice (:func:`~slicewise.infer.store.probability_view`: complex data is refused).
    """
    from slicewise.infer.store import read_prediction

    pred = read_prediction(path, key)
    if pred.probabilities is None:
        dtype = getattr(pred.labels, "dtype", "integer")
        raise InputError(
            f"{path} holds integer data ({dtype}), not probabilities in [0, 1] (a raw image or labels?): {_HINT}"
        )
    return _source(pred.probabilities, list(pred.channels) or None, pred.offset, str(path))


def as_probability_source(prob: Any, key: str | None = None) -> ProbabilitySource:
    """A :class:`ProbabilitySource` from a path, a source, or a ``(C, Z, Y, X)`` / ``(Z, Y, X)`` / ``(Y, X)``
    array (read like a file, through :func:`~slicewise.infer.store.probability_view`: a 2-D map is one slice)."""
    if isinstance(prob, ProbabilitySource):
        return prob
    if isinstance(prob, (str, os.PathLike)):
        return open_probabilities(prob, key)
    lazy = all(hasattr(prob, a) for a in ("shape", "dtype", "__getitem__"))
    return _source(
        probability_view(prob if lazy else np.asarray(prob), "the probability array"),
        None,
        (0, 0, 0),
        "the probability array",
    )


def read_probabilities(path: str | os.PathLike, key: str | None = None) -> tuple[np.ndarray, list[str] | None]:
    """Load a whole probability file written by ``predict`` as ``(C, Z, Y, X)`` and its channel names."""
    src = open_probabilities(path, key)
    return src.read_raw(tuple(slice(0, n) for n in src.shape)), src.names  # type: ignore[arg-type]


def _index(sel: int | str, names: Sequence[str] | None, n: int, what: str) -> int:
    """The one channel resolver: ``sel`` (a channel name, or an index 0..n-1 as int or digit string) as an index.

    Decision: negative indices are refused in one line, not counted from the end (``-1`` as "the last
    channel" silently picks a head such as ``distance``); unknown names and indices >= n likewise.
    """
    if isinstance(sel, str) and not sel.strip().lstrip("+-").isdigit():
        if not names or sel not in names:
            have = ", ".join(names) if names else "none stored: give an index"
            raise InputError(f"{what} channel {sel!r} is not among the channel names ({have})")
        return list(names).index(sel)
    i = int(sel)
    if i < 0:
        raise InputError(f"{what} channel {i} is negative: give an index 0..{n - 1} or a channel name")
    if i >= n:
        raise InputError(f"{what} channel {i} is out of range: the input has {n} channels (0..{n - 1})")
    return i


def _named(names: Sequence[str] | None, name: str) -> int | None:
    return list(names).index(name) if names and name in names else None


HEAD_NAMES = ("boundary", "distance")
"""Channel names of the auxiliary heads; every other named channel is a class."""
BACKGROUND_NAMES = ("background", "bg", "class0")
"""Class names taken as the background class (else the first class channel is)."""


def choose_foreground(sel: int | str | None, names: Sequence[str] | None, n: int) -> tuple[int | None, str]:
    """(foreground channel index, or None for ``1 − P(channel 0)``; a one-line description of the choice).

    The rule (module docstring): an explicit ``sel``; the only channel; the single non-background class
    channel by name; ``1 − P(channel 0)`` without names or with several non-background classes (their
    union; the description names them and how to pick one).
    """

    def label(i: int) -> str:
        return f"channel {i} {names[i]!r}" if names else f"channel {i}"

    if sel is not None:
        i = _index(sel, names, n, "foreground")
        return i, f"{label(i)} (--foreground-channel)"
    if n == 1:
        return 0, f"{label(0)} (the only channel)"
    if not names:
        return None, "1 - P(channel 0) (no channel names: every channel but 0 is foreground)"
    classes = [i for i, name in enumerate(names) if name not in HEAD_NAMES]
    if not classes:
        raise InputError(f"no class channel among {', '.join(names)}: pass --foreground-channel (index or name)")
    bg = next((i for i in classes if str(names[i]).lower() in BACKGROUND_NAMES), 0)
    objects = [i for i in classes if i != bg]
    if len(objects) == 1:
        return objects[0], f"{label(objects[0])} (the only class besides background {names[bg]!r})"
    if not objects:
        return bg, f"{label(bg)} (the only class)"
    return None, (
        f"1 - P({names[bg]!r}): the union of {', '.join(names[i] for i in objects)} "
        f"(pick one with --foreground-channel, e.g. {names[objects[0]]})"
    )


def _foreground(prob: np.ndarray, sel: int | str | None, names: Sequence[str] | None) -> np.ndarray:
    if sel is not None:
        return prob[_index(sel, names, len(prob), "foreground")]
    if len(prob) == 1:
        return prob[0]
    return 1.0 - prob[_background(names)]


def _background(names: Sequence[str] | None) -> int:
    """Index of the background class: the first channel named in :data:`BACKGROUND_NAMES`, else 0."""
    return next((i for i, name in enumerate(names or ()) if str(name).lower() in BACKGROUND_NAMES), 0)


def _distance_seeds(dist: np.ndarray, mask: np.ndarray, min_distance: int) -> np.ndarray:
    from skimage.feature import peak_local_max

    seeds = np.zeros(mask.shape, bool)
    if mask.any():
        peaks = peak_local_max(dist, min_distance=max(1, int(min_distance)), labels=_label(mask), exclude_border=False)
        seeds[tuple(peaks.T)] = True
    return seeds


def remove_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Drop objects with fewer than ``min_size`` voxels and renumber ids 1…N (int32)."""
    from skimage.segmentation import relabel_sequential

    labels = labels.astype(np.int32, copy=False)
    if min_size > 1:
        counts = np.bincount(labels.ravel())
        small = counts < int(min_size)
        small[0] = False
        labels = np.where(small[labels], 0, labels)
    return relabel_sequential(labels)[0].astype(np.int32)


def _label(mask: np.ndarray) -> np.ndarray:
    return ndi.label(mask)[0]


def _check_options(
    mode: str,
    use: str,
    min_size: int,
    min_distance: int,
    connectivity: int,
    thresholds: dict[str, float | None],
    seed_distance: float | None = None,
) -> None:
    """One-line refusals of bad options: ``thresholds`` are probabilities in [0, 1]; ``seed_distance`` (the
    seed threshold of ``use="distance"``, a distance in voxels or the distance channel's units) is finite and >= 0."""
    if mode not in MODES:
        raise InputError(f"mode {mode!r} is unknown: use one of {', '.join(MODES)}")
    if use not in USES:
        raise InputError(f"use {use!r} is unknown: use one of {', '.join(USES)}")
    if int(min_size) < 0:
        raise InputError(f"--min-size {min_size} must be >= 0 voxels")
    if int(min_distance) < 1:
        raise InputError(f"--min-distance {min_distance} must be >= 1 pixel")
    if connectivity not in (1, 2, 3):
        raise InputError(f"--connectivity {connectivity} must be 1 (faces), 2 (edges) or 3 (corners)")
    for name, t in thresholds.items():
        if t is not None and not (np.isfinite(t) and 0.0 <= float(t) <= 1.0):
            raise InputError(f"--{name} {t} must be a probability in [0, 1]")
    if seed_distance is not None and not (np.isfinite(seed_distance) and float(seed_distance) >= 0.0):
        raise InputError(
            f"--seed-threshold {seed_distance} must be a distance >= 0 (voxels, or the distance channel's "
            f"values) with --use distance"
        )


@dataclass(frozen=True)
class _Plan:
    """Resolved settings of one segmentation: channels by index, thresholds, blocks."""

    mode: str
    use: str
    fg: int | str | None
    names: list[str] | None
    fg_text: str
    boundary: int | None
    distance: int | None
    t_fg: float
    t_boundary: float
    t_seed: float | None
    min_distance: int
    per_slice: bool
    min_size: int
    connectivity: int
    block: tuple[int, int, int]
    halo: tuple[int, int, int]


def _plan(
    src: ProbabilitySource,
    names: list[str] | None,
    *,
    mode: str,
    use: str,
    foreground_channel: Any,
    boundary_channel: Any,
    distance_channel: Any,
    foreground_threshold: float,
    boundary_threshold: float,
    seed_threshold: float | None,
    min_distance: int,
    per_slice: bool,
    min_size: int,
    connectivity: int,
    block: Sequence[int],
    halo: Sequence[int],
) -> _Plan:
    n = src.channels
    if names is not None and len(names) != n:
        raise InputError(f"{len(names)} channel names for {n} channels: give one name per channel")
    foreground_channel, fg_text = choose_foreground(foreground_channel, names, n)
    b = d = None
    if mode == "watershed" and use == "boundary":
        sel = boundary_channel if boundary_channel is not None else _named(names, "boundary")
        if sel is None:
            raise InputError(
                "watershed on boundaries needs a boundary channel: pass --boundary-channel (index or name) or use distance"
            )
        b = _index(sel, names, n, "boundary")
    sel = distance_channel if distance_channel is not None else _named(names, "distance")
    if sel is not None:
        d = _index(sel, names, n, "distance")
    halo = (0, *halo[1:]) if per_slice else tuple(halo)
    return _Plan(
        mode,
        use,
        foreground_channel,
        names,
        fg_text,
        b,
        d,
        float(foreground_threshold),
        float(boundary_threshold),
        None if seed_threshold is None else float(seed_threshold),
        int(min_distance),
        bool(per_slice),
        int(min_size),
        int(connectivity),
        tuple(int(v) for v in block),
        tuple(int(v) for v in halo),
    )  # type: ignore[arg-type]


class _Reader:
    """Reads regions of the ROI (coordinates relative to it) and derives masks, surfaces and seeds."""

    def __init__(self, src: ProbabilitySource, roi: Roi, plan: _Plan) -> None:
        self.src, self.plan = src, plan
        n = src.channels
        if plan.fg is not None:
            fg = [_index(plan.fg, plan.names, n, "foreground")]
        else:
            fg = [0 if n == 1 else _background(plan.names)]
        watershed = plan.mode == "watershed"
        self.checked = fg + (
            [plan.boundary] if watershed and plan.use == "boundary" and plan.boundary is not None else []
        )
        self.finite = [plan.distance] if watershed and plan.use == "distance" and plan.distance is not None else []
        self.origin = tuple(s.start for s in roi)
        self.shape = tuple(s.stop - s.start for s in roi)

    def probs(self, region: Region) -> np.ndarray:
        shifted = tuple(slice(r.start + o, r.stop + o) for r, o in zip(region, self.origin))
        return self.src.read(shifted, self.checked, self.finite)  # type: ignore[arg-type]

    def foreground(self, p: np.ndarray) -> np.ndarray:
        return _foreground(p, self.plan.fg, self.plan.names)

    def mask(self, region: Region) -> np.ndarray:
        return self.foreground(self.probs(region)) > self.plan.t_fg

    def grown(self, region: Region) -> tuple[Region, Region]:
        """``region`` ± halo clipped to the ROI, and the core's position inside it."""
        big = tuple(
            slice(max(0, r.start - h), min(n, r.stop + h)) for r, h, n in zip(region, self.plan.halo, self.shape)
        )
        inner = tuple(slice(r.start - b.start, r.stop - b.start) for r, b in zip(region, big))
        return big, inner  # type: ignore[return-value]

    def distance(self, p: np.ndarray, m: np.ndarray) -> np.ndarray:
        if self.plan.distance is not None:
            return p[self.plan.distance]
        if self.plan.per_slice:
            return np.stack([ndi.distance_transform_edt(s) for s in m]).astype(np.float32)
        return ndi.distance_transform_edt(m).astype(np.float32)

    def seeds(self, region: Region) -> np.ndarray:
        """Seed mask of a block core (computed with the halo where seeds are not voxel-wise)."""
        pl = self.plan
        if pl.use == "boundary":
            p = self.probs(region)
            fg_p = self.foreground(p)
            t_seed = pl.t_fg if pl.t_seed is None else pl.t_seed
            return (fg_p > t_seed) & (p[pl.boundary] < pl.t_boundary) & (fg_p > pl.t_fg)
        big, inner = self.grown(region)
        p = self.probs(big)
        m = self.foreground(p) > pl.t_fg
        dist = self.distance(p, m)
        if pl.t_seed is not None:
            seeds = dist > pl.t_seed
        elif pl.per_slice:
            seeds = np.stack([_distance_seeds(d, s, pl.min_distance) for d, s in zip(dist, m)])
        else:
            seeds = _distance_seeds(dist, m, pl.min_distance)
        return (seeds & m)[inner]

    def flood(self, region: Region, markers_store: Any) -> np.ndarray:
        """Watershed of a block core with its halo, markers = global seed ids; returns the core's ids."""
        from skimage.segmentation import watershed

        big, inner = self.grown(region)
        p = self.probs(big)
        m = self.foreground(p) > self.plan.t_fg
        surface = tie_broken(p[self.plan.boundary] if self.plan.use == "boundary" else -self.distance(p, m))
        markers = np.asarray(markers_store[big]).astype(np.int64, copy=False)
        if self.plan.per_slice:
            out = np.stack(
                [
                    watershed(s, markers=k, mask=w) if k.any() else np.zeros(k.shape, np.int64)
                    for s, k, w in zip(surface, markers, m)
                ]
            )
        else:
            out = watershed(surface, markers=markers, mask=m) if markers.any() else np.zeros(m.shape, np.int64)
        return np.asarray(out, np.int64)[inner]


def tie_broken(surface: np.ndarray) -> np.ndarray:
    """The rank of each voxel by (surface value, position in C order), int64: equal values become distinct.

    Flooding compares values only, so ranks give the same watershed as the surface except on plateaus,
    which are flooded in C order. skimage's heap has no order among equal values, which would make
    plateaus depend on everything else in the array (and so on the block cut); ranks remove that.
    """
    order = np.argsort(surface, axis=None, kind="stable")
    rank = np.empty(order.size, np.int64)
    rank[order] = np.arange(order.size)
    return rank.reshape(surface.shape)


class _Passes:
    """Where :func:`_run` keeps its passes: in memory (``state`` None: numpy scratch, nothing kept) or in a
    resumable :class:`~slicewise.infer.resume.JobState` (Zarr scratch, finished passes and blocks kept)."""

    def __init__(self, shape: tuple[int, ...], block: Sequence[int], state: JobState | None) -> None:
        self.shape, self.state = shape, state
        self.chunks = tuple(min(int(b), int(n)) for b, n in zip(block, shape))

    def array(self, name: str) -> Any:
        return np.zeros(self.shape, np.int64) if self.state is None else self.state.array(name, self.shape, self.chunks)

    def blocks(self, name: str) -> BlockLog | None:
        return None if self.state is None else self.state.blocks(name)

    def step(self, name: str, compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        return compute() if self.state is None else self.state.step(name, compute)

    def components(
        self,
        name: str,
        mask: Callable[[Region], np.ndarray],
        prov: Any,
        structure: np.ndarray,
        block: Sequence[int],
        desc: str,
    ) -> tuple[np.ndarray, Components]:
        """:func:`label_blocks` of ``mask`` into ``prov`` as pass ``name`` (resumable by blocks)."""

        def compute() -> dict[str, np.ndarray]:
            table, comps = label_blocks(
                mask, self.shape, block, prov, structure=structure, desc=desc, blocks_done=self.blocks(name)
            )
            return {"table": table, "sizes": comps.sizes, "first": comps.first}

        res = self.step(name, compute)
        return res["table"], Components(len(res["sizes"]), res["sizes"], res["first"], self.shape)  # type: ignore[arg-type]


def _run(reader: _Reader, out: Any, state: JobState | None = None) -> int:
    """Segment the ROI block by block into ``out`` (int32, ROI-shaped); returns the number of objects.

    Passes (each resumable with a ``state``; the last one, into ``out``, is always redone): cc — label the
    mask; watershed — label the seeds, write them as global markers, flood each block with its halo,
    label the unseeded foreground; then the final ids."""
    pl, shape = reader.plan, reader.shape
    passes = _Passes(shape, pl.block, state)
    structure = structure_for(pl.connectivity if pl.mode == "cc" else 1, pl.per_slice)
    prov = passes.array("provisional")
    if pl.mode == "cc":
        table, comps = passes.components("components", reader.mask, prov, structure, pl.block, "labelling blocks")
        table, comps = filter_table(table, comps, pl.min_size)
        relabel_blocks(prov, table, out, shape, pl.block, desc="writing labels")
        return comps.n
    # seeds → global seed ids (exact, block-wise)
    table, seeds = passes.components("seeds", reader.seeds, prov, structure, pl.block, "labelling seeds")
    markers = passes.array("markers")
    passes.step(
        "markers",
        lambda: (relabel_blocks(prov, table, markers, shape, pl.block, dtype=np.int64, desc="writing seeds"), {})[1],
    )
    # flood each block with its halo
    ws = passes.array("watershed")
    regions = block_regions(shape, pl.block)

    def flood() -> dict[str, np.ndarray]:
        done_blocks = passes.blocks("watershed")
        seed_sizes = np.zeros(seeds.n + 1, np.int64)
        for i, region in enumerate(progress(regions, desc="watershed", total=len(regions))):
            done = done_blocks.load(i) if done_blocks is not None else None
            if done is None:
                lab = reader.flood(region, markers)
                ws[region] = lab
                counts = np.bincount(lab.ravel(), minlength=seeds.n + 1)
                ids = np.flatnonzero(counts)
                done = {"ids": ids, "counts": counts[ids]}
                if done_blocks is not None:
                    done_blocks.save(i, done)
            seed_sizes[done["ids"]] += done["counts"]
        return {"seed_sizes": seed_sizes}

    seed_sizes = passes.step("watershed", flood)["seed_sizes"]

    # unseeded foreground components, block-wise (the seeds' provisional ids are no longer needed)
    def orphan_mask(region: Region) -> np.ndarray:
        return reader.mask(region) & (np.asarray(ws[region]) == 0)

    o_table, orphans = passes.components("unseeded", orphan_mask, prov, structure, pl.block, "labelling unseeded")
    final = _final_table(seeds, seed_sizes[1:], orphans, pl)
    s = seeds.n
    for region in progress(regions, desc="writing labels", total=len(regions)):
        raw = np.asarray(ws[region])
        o = o_table[np.asarray(prov[region])]
        raw = np.where(raw > 0, raw, np.where(o > 0, o + s, 0))
        out[region] = final[raw].astype(np.int32)
    return int(final.max()) if final.size else 0


def _final_table(seeds: Components, seed_sizes: np.ndarray, orphans: Components, pl: _Plan) -> np.ndarray:
    """Map raw ids (seeds 1…S, unseeded S+1…S+O) to final ids 1…N by the module's numbering rule."""
    sizes = np.concatenate([seed_sizes, orphans.sizes])
    is_orphan = np.r_[np.zeros(seeds.n, bool), np.ones(orphans.n, bool)]
    raw = np.arange(sizes.size)
    if pl.per_slice:
        z = np.concatenate([seeds.first_z(), orphans.first_z()])
        order = np.lexsort((raw, is_orphan, z))
    else:
        order = raw
    keep = sizes[order] >= max(int(pl.min_size), 1)
    final = np.zeros(sizes.size + 1, np.int64)
    final[1 + order[keep]] = np.arange(1, int(keep.sum()) + 1)
    if final.size and int(final.max()) > np.iinfo(np.int32).max:
        raise InputError(f"{int(final.max())} objects do not fit int32 label ids: raise the thresholds or --min-size")
    return final


@dataclass(frozen=True)
class Segmented:
    """What :func:`segment_to` wrote: the output path, the number of objects, the label shape and offset."""

    path: Path
    n_objects: int
    shape: tuple[int, int, int]
    offset: tuple[int, int, int]
    foreground: str = ""


def to_stored(roi: Roi | Sequence[slice] | None, offset: Sequence[int], shape: Sequence[int]) -> Roi:
    """A range in source-volume coordinates → a resolved region of an array stored at ``offset``.

    Non-negative bounds are shifted by the offset and clipped to the array (numpy's rule); negative
    bounds count from the array's end. A range that misses the array is refused in one line.
    """
    if roi is None:
        return resolve_roi(None, shape)
    if not any(offset):
        return resolve_roi(roi, shape)
    out = []
    for axis, (s, o, n) in enumerate(zip(tuple(roi) + (slice(None),) * (3 - len(roi)), offset, shape)):

        def move(v: int | None, o: int = o, n: int = n) -> int | None:
            return v if v is None or v < 0 else min(max(v - o, 0), n)

        local = slice(move(s.start), move(s.stop))
        start, stop, _ = local.indices(int(n))
        if stop <= start:
            name = "zyx"[axis]
            raise InputError(
                f"the {name} range {s.start}:{s.stop} misses the prediction, which covers {o}:{o + n} "
                f"of the source volume: give a range inside it"
            )
        out.append(local)
    return resolve_roi(out, shape)


def _prepare(
    prob: Any,
    key: str | None,
    channel_names: Sequence[str] | None,
    roi: Roi | Sequence[slice] | None,
    block: Sequence[int] | None,
    halo: Sequence[int] | None,
    default_block: Sequence[int] | None,
    **options: Any,
) -> _Reader:
    _check_options(
        options["mode"],
        options["use"],
        options["min_size"],
        options["min_distance"],
        options["connectivity"],
        {
            "foreground-threshold": options["foreground_threshold"],
            "boundary-threshold": options["boundary_threshold"],
            "seed-threshold": options["seed_threshold"] if options["use"] == "boundary" else None,
        },
        seed_distance=options["seed_threshold"] if options["use"] == "distance" else None,
    )
    src = as_probability_source(prob, key)
    names = list(channel_names) if channel_names is not None else src.names
    region = to_stored(roi, src.offset, src.shape)
    shape = tuple(r.stop - r.start for r in region)
    for name, b in (("--block", block), ("--halo", halo)):
        if b is not None and (len(b) != 3 or min(int(v) for v in b) < (1 if name == "--block" else 0)):
            raise InputError(f"{name} {tuple(b)} must be three integers >= {1 if name == '--block' else 0} (Z,Y,X)")
    blk = tuple(block) if block is not None else (tuple(default_block) if default_block is not None else shape)
    blk = tuple(min(int(b), int(n)) for b, n in zip(blk, shape))
    plan = _plan(src, names, block=blk, halo=tuple(halo) if halo is not None else DEFAULT_HALO, **options)
    return _Reader(src, region, plan)  # type: ignore[arg-type]


@dataclass(frozen=True)
class SegmentOptions:
    """How probabilities become instances (see the module docstring for the rules); values are checked when used."""

    mode: Mode = "cc"
    use: Use = "boundary"
    foreground_channel: int | str | None = None
    boundary_channel: int | str | None = None
    distance_channel: int | str | None = None
    foreground_threshold: float = 0.5
    boundary_threshold: float = 0.5
    seed_threshold: float | None = None
    min_distance: int = 3
    per_slice: bool = False
    min_size: int = 0
    connectivity: int = 1


#: options that only one mode / watershed source reads: (option, applies when, what to add)
_ONLY_FOR: tuple[tuple[str, Any, str], ...] = (
    ("use", lambda o: o["mode"] == "watershed", "--mode watershed"),
    (
        "boundary_channel",
        lambda o: o["mode"] == "watershed" and o["use"] == "boundary",
        "--mode watershed --use boundary",
    ),
    (
        "boundary_threshold",
        lambda o: o["mode"] == "watershed" and o["use"] == "boundary",
        "--mode watershed --use boundary",
    ),
    ("seed_threshold", lambda o: o["mode"] == "watershed", "--mode watershed"),
    (
        "distance_channel",
        lambda o: o["mode"] == "watershed" and o["use"] == "distance",
        "--mode watershed --use distance",
    ),
    ("min_distance", lambda o: o["mode"] == "watershed" and o["use"] == "distance", "--mode watershed --use distance"),
)


def _options(options: SegmentOptions | None, overrides: dict[str, Any], halo: Any = None) -> dict[str, Any]:
    """``options`` (default :class:`SegmentOptions`) with ``overrides`` applied, as keyword arguments. An option
    set (to other than its default) where the mode ignores it is refused in one line (``--mode cc`` with
    ``--boundary-threshold``, ``--use distance`` with ``--boundary-channel``, a ``halo`` for connected
    components, ...): a setting that would silently do nothing."""
    base = options or SegmentOptions()
    try:
        opts = asdict(replace(base, **overrides))
    except TypeError:
        known = ", ".join(f.name for f in fields(SegmentOptions))
        raise InputError(f"unknown segment option(s) {', '.join(sorted(overrides))}: use {known}") from None
    if opts["mode"] not in MODES or opts["use"] not in USES:
        return opts  # refused by _check_options with the list of modes / uses
    defaults = asdict(SegmentOptions())
    for name, applies, needs in _ONLY_FOR:
        if opts[name] != defaults[name] and not applies(opts):
            flag = "--" + name.replace("_", "-")
            raise InputError(
                f"{flag} {opts[name]} does nothing with --mode {opts['mode']}"
                f"{' --use ' + opts['use'] if opts['mode'] == 'watershed' else ''}: it applies to "
                f"{needs}; drop it, or add {needs}"
            )
    if halo is not None and opts["mode"] != "watershed":
        raise InputError(
            "--halo is the watershed's context around each block; connected components need none "
            "(they are exact block by block): drop it, or add --mode watershed"
        )
    return opts


def segment(
    prob: Any,
    options: SegmentOptions | None = None,
    *,
    block: Sequence[int] | None = None,
    halo: Sequence[int] | None = None,
    roi: Roi | Sequence[slice] | None = None,
    channel_names: Sequence[str] | None = None,
    key: str | None = None,
    output: str | os.PathLike | None = None,
    overwrite: bool = False,
    **overrides: Any,
) -> np.ndarray:
    """Instance labels ``(Z, Y, X)`` int32 from probabilities, in memory (see the module docstring for the rules).

    ``prob``: ``(C, Z, Y, X)``, ``(Z, Y, X)`` or ``(Y, X)`` array (labels ``(1, Y, X)``), or a path (``key`` selects the dataset).
    ``options``: :class:`SegmentOptions`; ``overrides``: any of its fields (``segment(p, mode="watershed")``).
    ``channel_names`` override the names stored in the file. ``block`` (default: the whole volume, one
    block) and ``halo`` run the block-wise algorithm in memory; ``roi`` (z, y, x slices in source-volume
    coordinates) segments a box. With ``output`` the labels are written block-wise there too
    (:func:`segment_to`; existing files need ``overwrite``) and read back.
    """
    opts = _options(options, overrides, halo)
    if output is not None:
        res = segment_to(
            prob,
            output,
            block=block,
            halo=halo,
            roi=roi,
            channel_names=channel_names,
            key=key,
            overwrite=overwrite,
            **opts,
        )
        from slicewise.data.io import open_volume

        return np.asarray(open_volume(res.path)[...], np.int32)
    reader = _prepare(prob, key, channel_names, roi, block, halo, None, **opts)
    out = np.zeros(reader.shape, np.int32)
    n = _run(reader, out)
    if n == 0:
        log.warning(
            f"0 objects (foreground {reader.plan.fg_text} never above foreground_threshold "
            f"{reader.plan.t_fg:g}): lower the threshold or check the channel"
        )
    return out


def segment_to(
    prob: Any,
    output: str | os.PathLike,
    options: SegmentOptions | None = None,
    *,
    block: Sequence[int] | None = None,
    halo: Sequence[int] | None = None,
    roi: Roi | Sequence[slice] | None = None,
    channel_names: Sequence[str] | None = None,
    key: str | None = None,
    overwrite: bool = False,
    resume: bool = True,
    **overrides: Any,
) -> Segmented:
    """Segment block by block from a (lazy) probability map into a label file (.zarr / .h5 / .tif), int32.

    ``block`` (z, y, x; default :data:`DEFAULT_BLOCK` clipped to the volume) bounds the memory;
    ``halo`` (default :data:`DEFAULT_HALO`) is the watershed context. ``options`` / ``overrides`` as :func:`segment`.
    The output is checked before any work, claimed, written to a temporary sibling and renamed when
    complete; its ``offset`` attribute (Zarr / HDF5) records where the labels start in the source volume.

    Resumable: the passes keep their scratch arrays and results in ``.<output name>.state/`` next to the
    output (:mod:`slicewise.infer.resume`); a run that is interrupted or fails (other than by refusing its
    input) leaves it, and rerunning the same command skips the finished passes and blocks (the input must
    be unchanged: else a one-line error).
    Other settings, ``overwrite`` or ``resume=False`` start afresh. The folder is deleted on success.
    """
    from slicewise.utils.atomic import check_output_path

    opts = _options(options, overrides, halo)
    out_path = check_output_path(output, overwrite=overwrite, inputs=(prob,))
    reader = _prepare(prob, key, channel_names, roi, block, halo, DEFAULT_BLOCK, **opts)
    offset = tuple(int(o + s) for o, s in zip(reader.src.offset, reader.origin))
    fingerprint = {
        "options": opts,
        "channels": reader.src.channels,
        "names": reader.plan.names,
        "origin": list(reader.origin),
        "shape": list(reader.shape),
        "offset": list(offset),
        "block": list(reader.plan.block),
        "halo": list(reader.plan.halo),
    }
    store = _create_label_store(out_path, reader.shape, reader.plan.block, {"offset": list(offset)}, overwrite)
    state: JobState | None = None
    hint = f"rerun the same command to resume: finished passes and blocks are kept in {state_folder(out_path)}"
    try:
        identity = _identity(reader.src, prob if isinstance(prob, (str, os.PathLike)) else None)
        state = JobState.open(out_path, fingerprint, identity, resume=resume and not overwrite)
        with resume_hint(hint):
            n = _run(reader, store, state)
        path = store.finalize()
    except BaseException as err:
        store.abort()
        if isinstance(err, InputError) and state is not None:  # the input was refused: nothing to resume
            state.remove()
        raise
    state.remove()
    if n == 0:
        log.warning(
            f"{path}: 0 objects (foreground {reader.plan.fg_text} never above --foreground-threshold "
            f"{reader.plan.t_fg:g}): lower the threshold or check the channel"
        )
    return Segmented(path, n, reader.shape, offset, reader.plan.fg_text)  # type: ignore[arg-type]


class _ChannelLast:
    """A probability source seen as a Z×Y×X×C array (what :func:`~slicewise.utils.identity.sampled_hash` reads)."""

    def __init__(self, src: ProbabilitySource) -> None:
        self.src, self.shape, self.dtype = src, (*src.shape, src.channels), np.dtype(np.float32)

    def __getitem__(self, key: tuple[int, slice, slice]) -> np.ndarray:
        z, ys, xs = key
        return np.moveaxis(np.asarray(self.src.read_raw((slice(z, z + 1), ys, xs)))[:, 0], 0, -1)


def _identity(src: ProbabilitySource, path: str | os.PathLike | None) -> dict[str, Any]:
    """The probability input's identity for a resumed run (:func:`~slicewise.utils.identity.input_identity`)."""
    from slicewise.utils.identity import input_identity

    return input_identity(_ChannelLast(src), path)


def _create_label_store(
    path: Path, shape: Sequence[int], chunks: Sequence[int], attrs: dict[str, Any], overwrite: bool
) -> Any:
    """An int32 label store (Zarr array / HDF5 dataset ``data`` / TIFF) chunked by the block, with ``attrs``."""
    from slicewise.infer.store import create_array_store

    return create_array_store(path, shape, np.int32, chunks=chunks, attrs=attrs, overwrite=overwrite)
