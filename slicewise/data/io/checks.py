"""Input checks and summaries: :func:`check_raw`, :func:`check_labels`, :func:`summarize_volume` (all
chunk by chunk), and the one-line errors for damaged files (:func:`damaged`, :func:`tifffile_warnings`)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from slicewise.data.io.volume import Volume, as_volume
from slicewise.errors import InputError


def damaged(source: Any, err: BaseException) -> InputError:
    """The one-line error for a file that opened but fails when read (truncated strip or chunk, bad codec data)."""
    detail = " ".join(str(err).split())[:160]
    return InputError(f"cannot read {source}: the file is damaged or incomplete ({type(err).__name__}"
                      f"{': ' + detail if detail else ''}): re-export or re-download it")


@contextlib.contextmanager
def tifffile_warnings() -> Iterator[list[str]]:
    """Collect tifffile's log warnings (e.g. "invalid page offset" of a truncated file) while a TIFF is
    opened, instead of letting them reach the terminal; the caller turns them into one error."""
    logger = logging.getLogger("tifffile")
    seen: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.WARNING:
                seen.append(record.getMessage())

    handler, propagate = _Collect(), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield seen
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def check_raw(volume: Any) -> Volume:
    """Check a raw volume: not empty, numeric, and (float) free of NaN/Inf, chunk by chunk. Returns it as a Volume."""
    vol = as_volume(volume)
    if vol.size == 0:
        raise InputError(f"raw volume {vol.source} is empty (shape {vol.shape}): check the file and key")
    if not (np.issubdtype(vol.dtype, np.number) or vol.dtype == bool) or np.issubdtype(vol.dtype, np.complexfloating):
        raise InputError(f"raw volume {vol.source} has dtype {vol.dtype}: expected integer or float intensities")
    if np.issubdtype(vol.dtype, np.floating):
        for sl, block in vol.iter_chunks():
            bad = ~np.isfinite(block)
            if bad.any():
                z = sl[0].start + int(np.argwhere(bad)[0][0])
                raise InputError(f"raw volume {vol.source} contains NaN/Inf values (first at slice z={z}): "
                                 f"replace or mask them before use")
    return vol


def check_labels(labels: Any, raw_shape: Sequence[int] | None = None, kind: str = "semantic",
                 n_classes: int | None = None) -> Volume:
    """Check a label volume against its raw volume and the task; returns it as a Volume.

    ``kind`` is ``"semantic"`` (class values; at most ``n_classes`` distinct values, any values,
    e.g. ISBI's {0, 255}) or ``"instance"`` (integer ids, 0 = background). Float labels are
    accepted only when every value is a whole number. Checks run chunk by chunk.
    """
    if kind not in ("semantic", "instance"):
        raise InputError(f"label kind {kind!r} is unknown: use 'semantic' or 'instance'")
    lab = as_volume(labels)
    if lab.size == 0:
        raise InputError(f"label volume {lab.source} is empty (shape {lab.shape})")
    if lab.ndim != 3:
        raise InputError(f"labels {lab.source} have shape {lab.shape}: expected one value per voxel (Z×Y×X), "
                         f"not {lab.shape[-1]} channels")
    if raw_shape is not None and tuple(raw_shape[:3]) != lab.shape:
        raw_zyx = tuple(raw_shape[:3]) if len(raw_shape) >= 3 else tuple(raw_shape)
        raise InputError(f"labels {lab.source} have shape {lab.shape} but the raw volume is {raw_zyx}: "
                         f"they must match voxel for voxel")
    if not (np.issubdtype(lab.dtype, np.number) or lab.dtype == bool):
        raise InputError(f"labels {lab.source} have dtype {lab.dtype}: expected integers")
    is_float = np.issubdtype(lab.dtype, np.floating)
    values: set[int] = set()
    for sl, block in lab.iter_chunks():
        if is_float:
            bad = ~np.isfinite(block) | (block != np.round(block))
            if bad.any():
                z = sl[0].start + int(np.argwhere(bad)[0][0])
                what = "instance ids" if kind == "instance" else "class labels"
                raise InputError(f"labels {lab.source} are float with non-integer values (first at slice z={z}) "
                                 f"where {what} are expected: threshold probabilities or cast ids to integers")
        if kind == "instance" and block.size and block.min() < 0:
            raise InputError(f"labels {lab.source} hold negative ids: instance ids must be >= 0 (0 = background)")
        if n_classes is not None and kind == "semantic":
            values.update(int(v) for v in np.unique(block))
            if len(values) > n_classes:
                shown = ", ".join(map(str, sorted(values)[:8])) + (", ..." if len(values) > 8 else "")
                raise InputError(f"labels {lab.source} hold more than {n_classes} distinct values ({shown}) "
                                 f"but n_classes={n_classes}: raise n_classes or relabel")
    return lab


def summarize_volume(volume: Any, max_distinct: int = 1 << 16) -> dict[str, Any]:
    """Shape, dtype, value range, voxel size and a label summary of a volume, read chunk by chunk.

    ``min``/``max`` are over the finite values; ``nan``, ``posinf`` and ``neginf`` count the
    non-finite ones (always 0 for integer volumes), so a range never hides them.

    ``looks_like`` is a heuristic: ``"image"`` (float, or many values varying pixel to pixel),
    ``"semantic labels"`` (integers with at most 16 distinct values) or ``"instance labels"``
    (many integer values that are constant over regions).
    """
    vol = as_volume(volume)
    lo, hi, distinct, same, pairs = None, None, set(), 0, 0
    n_nan = n_posinf = n_neginf = 0
    is_int = np.issubdtype(vol.dtype, np.integer) or vol.dtype == bool
    is_float = np.issubdtype(vol.dtype, np.floating)
    for _, block in vol.iter_chunks(desc="scanning"):
        if block.size == 0:
            continue
        if is_float:
            n_nan += int(np.count_nonzero(np.isnan(block)))
            n_posinf += int(np.count_nonzero(np.isposinf(block)))
            n_neginf += int(np.count_nonzero(np.isneginf(block)))
        finite = block[np.isfinite(block)] if is_float else block
        if finite.size:
            bmin, bmax = finite.min(), finite.max()
            lo = bmin if lo is None else min(lo, bmin)
            hi = bmax if hi is None else max(hi, bmax)
        integral = is_int or (is_float and finite.size and bool(np.all(finite == np.round(finite))))
        if integral and len(distinct) <= max_distinct:
            distinct.update(np.unique(finite).tolist())
        if block.shape[2] > 1:
            same += int(np.count_nonzero(block[:, :, 1:] == block[:, :, :-1]))
            pairs += block[:, :, 1:].size
    n = len(distinct) if distinct else None
    smooth = same / pairs if pairs else 1.0
    if n is None:
        looks = "image"
    elif n <= 16:
        looks = "semantic labels" if n > 1 or vol.dtype != np.uint8 else "semantic labels (constant)"
    elif smooth > 0.8:
        looks = "instance labels"
    else:
        looks = "image"
    return {
        "source": vol.source, "shape": vol.shape, "dtype": str(vol.dtype), "channels": vol.channels,
        "min": None if lo is None else lo.item() if hasattr(lo, "item") else lo,
        "max": None if hi is None else hi.item() if hasattr(hi, "item") else hi,
        "nan": n_nan, "posinf": n_posinf, "neginf": n_neginf,
        "voxel_size": vol.voxel_size,
        "distinct_values": None if n is None else (n if n <= max_distinct else f">{max_distinct}"),
        "looks_like": looks,
        "values": sorted(distinct)[:16] if n is not None and n <= 16 else None,
    }

