"""The probability input of ``segment``: lazy checked reads, channels chosen by index or name, region reads.

Input: probabilities ``(C, Z, Y, X)`` as written by ``slicewise predict`` (channel names ``class0 … classN-1``
then head names such as ``boundary`` / ``distance``), a single foreground map ``(Z, Y, X)`` or ``(Y, X)`` (a
2-D map is one slice: the labels are ``(1, Y, X)``), or a path to such a file (read lazily, block by block:
``.zarr`` / ``.h5`` with key ``probabilities`` by default, channel-first, channel names from the ``channels``
attribute; ``.tif`` as ``predict`` writes it, channel-last ``Z×Y×X×C``, or a ``Z×Y×X`` / ``Y×X`` foreground
map). Files and arrays are read alike (:func:`slicewise.data.io.predictions.probability_view`): complex data and other
ranks are refused in one line naming the dtype or shape. Every block read is checked: values must be finite,
and every channel except a distance channel within [0, 1] (a raw image or logits is refused in one line; make
probabilities with ``slicewise predict``). Channels are chosen by index or by name:

- foreground (:func:`choose_foreground`): ``foreground_channel`` (index or name); else the only channel;
  else, with channel names (the model's ``class_names`` that ``predict`` records, then head names such
  as ``boundary`` / ``distance``), the single class channel that is not the background (the class named
  ``background`` / ``bg`` / ``class0``, else the first class): ``membrane`` of ``[background, membrane]``;
  with several such classes, or without names, ``1 − P(channel 0)`` (the union of every non-background
  class; a multi-class model's background is its class 0). The choice is in
  :attr:`slicewise.segment.Segmented.foreground`, and ``slicewise segment`` prints it on stderr.
- boundary: ``boundary_channel``; default the channel named ``boundary``.
- distance: ``distance_channel``; default the channel named ``distance``, else the Euclidean
  distance transform of the foreground mask (per slice when ``per_slice``).

Channel indices are 0..C-1 (:func:`channel_index`); negative indices are refused, not counted from the end.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from slicewise.data.grid import Box
from slicewise.data.io.lazy import Key, LazyView
from slicewise.data.io.predictions import check_probability_values, probability_view, read_prediction_probabilities
from slicewise.data.roi import resolve_roi
from slicewise.errors import InputError
from slicewise.utils.identity import input_identity

HEAD_NAMES = ("boundary", "distance")
"""Channel names of the auxiliary heads; every other named channel is a class."""
BACKGROUND_NAMES = ("background", "bg", "class0")
"""Class names taken as the background class (else the first class channel is)."""


class ProbabilitySource(LazyView):
    """Lazy probabilities: a float32 ``(C, Z, Y, X)`` view of ``array`` with channel ``names`` and ``offset``.

    Indexing reads without checks; :meth:`read` reads a (z, y, x) box and checks the channels it will use.
    ``offset`` (z, y, x) is where the stored array starts in the source volume (a ROI prediction);
    ``label`` names the input in messages, ``source_dtype`` is the stored dtype (named when values are refused).
    """

    what = "probability map"

    def __init__(
        self,
        array: Any,
        names: Sequence[str] | None = None,
        offset: Sequence[int] = (0, 0, 0),
        label: str = "the probability array",
        source_dtype: Any = None,
    ) -> None:
        self.array = array
        self.shape = tuple(int(s) for s in array.shape)
        if len(self.shape) != 4:
            raise InputError(
                f"{label} has shape {self.shape}, not (C, Z, Y, X): read other shapes with as_probability_source"
            )
        self.dtype = np.dtype(np.float32)
        self.names = list(names) if names is not None else None
        self.offset: tuple[int, int, int] = tuple(int(o) for o in offset)  # type: ignore[assignment]
        self.label = label
        self.source_dtype = str(source_dtype if source_dtype is not None else getattr(array, "dtype", "float32"))

    @property
    def channels(self) -> int:
        """The number of channels C."""
        return self.shape[0]

    @property
    def volume_shape(self) -> tuple[int, int, int]:
        """The (z, y, x) extent in voxels."""
        return self.shape[1:]  # type: ignore[return-value]

    def _read(self, key: Key) -> np.ndarray:
        return np.asarray(self.array[key]).astype(np.float32, copy=False)

    def read(self, box: Box, probabilities: Sequence[int] | None = None, finite: Sequence[int] = ()) -> np.ndarray:
        """The box as float32 ``(C, bz, by, bx)``, refused in one line unless the channels used are valid.

        ``probabilities`` (default: all) must be finite and in [0, 1]; ``finite`` (e.g. a distance
        channel) only finite. Other channels (raw heads that are not used) are not checked.
        """
        block = self[(slice(None), *box)]
        idx = list(range(len(block))) if probabilities is None else sorted(set(probabilities))
        probs = block[idx]
        check_probability_values(probs, self.label, self.source_dtype, block[list(finite)])
        return block


class ChannelLast(LazyView):
    """A probability source seen as a Z×Y×X×C array (what :func:`~slicewise.utils.identity.sampled_hash` reads)."""

    def __init__(self, src: ProbabilitySource) -> None:
        self.src, self.shape, self.dtype = src, (*src.volume_shape, src.channels), np.dtype(np.float32)

    def _read(self, key: Key) -> np.ndarray:
        *zyx, c = key
        out = self.src[(c, *zyx)]
        return out if isinstance(c, int) else np.moveaxis(out, 0, -1)


def open_probabilities(path: str | os.PathLike, key: str | None = None) -> ProbabilitySource:
    """Open a probability map written by ``predict`` lazily (:func:`slicewise.data.io.predictions.read_prediction`).

    Every layout ``predict`` writes (NGFF / older Zarr groups, HDF5, TIFF; uint8 / float16 stores
    de-quantized) with its channel names and ``offset``; a plain float (Z, Y, X) map is one channel and a
    (Y, X) map one slice (:func:`~slicewise.data.io.predictions.probability_view`: complex data is refused).
    """
    pred = read_prediction_probabilities(path, key)
    view = pred.probabilities
    return ProbabilitySource(view, list(pred.channels) or None, pred.offset, str(path), view.source_dtype)


def as_probability_source(prob: Any, key: str | None = None) -> ProbabilitySource:
    """A :class:`ProbabilitySource` from a path, a source, or a ``(C, Z, Y, X)`` / ``(Z, Y, X)`` / ``(Y, X)``
    array (read like a file, through :func:`~slicewise.data.io.predictions.probability_view`: a 2-D map is one
    slice)."""
    if isinstance(prob, ProbabilitySource):
        return prob
    if isinstance(prob, (str, os.PathLike)):
        return open_probabilities(prob, key)
    lazy = all(hasattr(prob, a) for a in ("shape", "dtype", "__getitem__"))
    view = probability_view(prob if lazy else np.asarray(prob), "the probability array")
    return ProbabilitySource(view, None, (0, 0, 0), "the probability array", view.source_dtype)


def read_probabilities(path: str | os.PathLike, key: str | None = None) -> tuple[np.ndarray, list[str] | None]:
    """Load a whole probability file written by ``predict`` as ``(C, Z, Y, X)`` and its channel names."""
    src = open_probabilities(path, key)
    return src[...], src.names


def input_identity_of(src: ProbabilitySource, path: str | os.PathLike | None) -> dict[str, Any]:
    """The probability input's identity for a resumed run (:func:`~slicewise.utils.identity.input_identity`)."""
    return input_identity(ChannelLast(src), path)


def channel_index(sel: int | str, names: Sequence[str] | None, n: int, what: str) -> int:
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


def named_channel(names: Sequence[str] | None, name: str) -> int | None:
    """The index of the channel called ``name``, or None."""
    return list(names).index(name) if names and name in names else None


def choose_foreground(sel: int | str | None, names: Sequence[str] | None, n: int) -> tuple[int | None, str]:
    """(foreground channel index, or None for ``1 − P(channel 0)``; a one-line description of the choice).

    The rule (module docstring): an explicit ``sel``; the only channel; the single non-background class
    channel by name; ``1 − P(channel 0)`` without names or with several non-background classes (their
    union; the description names them and how to pick one).
    """

    def label(i: int) -> str:
        return f"channel {i} {names[i]!r}" if names else f"channel {i}"

    if sel is not None:
        i = channel_index(sel, names, n, "foreground")
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


def background_index(names: Sequence[str] | None) -> int:
    """Index of the background class: the first channel named in :data:`BACKGROUND_NAMES`, else 0."""
    return next((i for i, name in enumerate(names or ()) if str(name).lower() in BACKGROUND_NAMES), 0)


def foreground_of(prob: np.ndarray, sel: int | str | None, names: Sequence[str] | None) -> np.ndarray:
    """The foreground probability of a ``(C, ...)`` block: channel ``sel``, the only channel, or 1 − background."""
    if sel is not None:
        return prob[channel_index(sel, names, len(prob), "foreground")]
    if len(prob) == 1:
        return prob[0]
    return 1.0 - prob[background_index(names)]


def to_stored(roi: Sequence[slice] | None, offset: Sequence[int], shape: Sequence[int]) -> Box:
    """A range in source-volume coordinates → a resolved box of an array stored at ``offset``.

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


@dataclass(frozen=True)
class SegmentPlan:
    """Resolved settings of one segmentation: channels by index, thresholds, block and halo (z, y, x voxels)."""

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


def make_plan(
    src: ProbabilitySource, names: list[str] | None, options: Any, block: Sequence[int], halo: Sequence[int]
) -> SegmentPlan:
    """The :class:`SegmentPlan` of ``options`` (a ``SegmentOptions``) for ``src``: channels resolved, refused in
    one line when a needed channel is missing or unknown."""
    n = src.channels
    if names is not None and len(names) != n:
        raise InputError(f"{len(names)} channel names for {n} channels: give one name per channel")
    fg, fg_text = choose_foreground(options.foreground_channel, names, n)
    b = d = None
    if options.mode == "watershed" and options.use == "boundary":
        sel = options.boundary_channel if options.boundary_channel is not None else named_channel(names, "boundary")
        if sel is None:
            raise InputError(
                "watershed on boundaries needs a boundary channel: pass --boundary-channel (index or name) "
                "or use distance"
            )
        b = channel_index(sel, names, n, "boundary")
    sel = options.distance_channel if options.distance_channel is not None else named_channel(names, "distance")
    if sel is not None:
        d = channel_index(sel, names, n, "distance")
    halo = (0, *halo[1:]) if options.per_slice else tuple(halo)
    return SegmentPlan(
        options.mode,
        options.use,
        fg,
        names,
        fg_text,
        b,
        d,
        float(options.foreground_threshold),
        float(options.boundary_threshold),
        None if options.seed_threshold is None else float(options.seed_threshold),
        int(options.min_distance),
        bool(options.per_slice),
        int(options.min_size),
        int(options.connectivity),
        tuple(int(v) for v in block),  # type: ignore[arg-type]
        tuple(int(v) for v in halo),  # type: ignore[arg-type]
    )


class RegionReader:
    """Reads boxes of the ROI (coordinates relative to it): the checked probabilities, foreground and mask."""

    def __init__(self, src: ProbabilitySource, roi: Box, plan: SegmentPlan) -> None:
        self.src, self.plan = src, plan
        n = src.channels
        if plan.fg is not None:
            fg = [channel_index(plan.fg, plan.names, n, "foreground")]
        else:
            fg = [0 if n == 1 else background_index(plan.names)]
        watershed = plan.mode == "watershed"
        boundary = watershed and plan.use == "boundary" and plan.boundary is not None
        self.checked = fg + ([plan.boundary] if boundary else [])  # type: ignore[list-item]
        self.finite = [plan.distance] if watershed and plan.use == "distance" and plan.distance is not None else []
        self.origin = tuple(s.start for s in roi)
        self.shape: tuple[int, int, int] = tuple(s.stop - s.start for s in roi)  # type: ignore[assignment]

    def probs(self, box: Box) -> np.ndarray:
        shifted = tuple(slice(r.start + o, r.stop + o) for r, o in zip(box, self.origin))
        return self.src.read(shifted, self.checked, self.finite)  # type: ignore[arg-type]

    def foreground(self, p: np.ndarray) -> np.ndarray:
        return foreground_of(p, self.plan.fg, self.plan.names)

    def mask(self, box: Box) -> np.ndarray:
        return self.foreground(self.probs(box)) > self.plan.t_fg

    def grown(self, box: Box) -> tuple[Box, Box]:
        """``box`` ± halo clipped to the ROI, and the core's position inside it."""
        big = tuple(slice(max(0, r.start - h), min(n, r.stop + h)) for r, h, n in zip(box, self.plan.halo, self.shape))
        inner = tuple(slice(r.start - b.start, r.stop - b.start) for r, b in zip(box, big))
        return big, inner  # type: ignore[return-value]
