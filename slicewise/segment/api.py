"""Instances from probabilities: :func:`segment` (in memory) and :func:`segment_to` (block-wise into a file).

Connected components or seeded watershed, 2-D per slice or 3-D (:mod:`slicewise.segment.settings`), from
any probability input (:mod:`slicewise.segment.inputs`), block by block (:mod:`slicewise.segment.blockwise`).
The result is int32 ``(Z, Y, X)``, 0 = background.

Ranges: ``roi`` (``--z`` / ``--roi``) selects a box of the probability map in the coordinates of the
source volume (a prediction made over a ROI records its ``offset``, which is subtracted); the result
is the segmentation of that box alone, as if the file had been cut to it (objects are not followed
outside it, halos stop at its edges), and the written labels record the box's ``offset``.

Resume: :func:`segment_to` keeps each pass's scratch arrays, per-block records and results next to the
output (:mod:`slicewise.segment.resume`), so an interrupted run continues where it stopped when rerun.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from slicewise.data.io import open_volume
from slicewise.data.io.outputs import check_output_path
from slicewise.data.io.stores import create_array_store
from slicewise.errors import InputError
from slicewise.segment.blockwise import run_passes
from slicewise.segment.inputs import RegionReader, as_probability_source, input_identity_of, make_plan, to_stored
from slicewise.segment.resume import JobState, state_folder
from slicewise.segment.settings import DEFAULT_BLOCK, DEFAULT_HALO, SegmentOptions, segment_options
from slicewise.utils.signals import resume_hint

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Segmented:
    """What :func:`segment_to` wrote: the output path, the number of objects, the label shape and offset, and a
    one-line description of the foreground channel chosen."""

    path: Path
    n_objects: int
    shape: tuple[int, int, int]
    offset: tuple[int, int, int]
    foreground: str = ""


def _checked(options: SegmentOptions | None, overrides: dict[str, Any], halo: Any) -> SegmentOptions:
    """:func:`~slicewise.segment.settings.segment_options`, and a ``halo`` refused for connected components."""
    opts = segment_options(options, **overrides)
    if halo is not None and opts.mode != "watershed":
        raise InputError(
            "--halo is the watershed's context around each block; connected components need none "
            "(they are exact block by block): drop it, or add --mode watershed"
        )
    return opts


def _check_sizes(block: Sequence[int] | None, halo: Sequence[int] | None) -> None:
    for name, b, least in (("--block", block, 1), ("--halo", halo, 0)):
        if b is not None and (len(b) != 3 or min(int(v) for v in b) < least):
            raise InputError(f"{name} {tuple(b)} must be three integers >= {least} (Z,Y,X)")


def _prepare(
    prob: Any,
    opts: SegmentOptions,
    key: str | None,
    channel_names: Sequence[str] | None,
    roi: Sequence[slice] | None,
    block: Sequence[int] | None,
    halo: Sequence[int] | None,
    default_block: Sequence[int] | None,
) -> RegionReader:
    """The reader of the ROI of ``prob`` with its plan; sizes and channels refused in one line."""
    src = as_probability_source(prob, key)
    names = list(channel_names) if channel_names is not None else src.names
    box = to_stored(roi, src.offset, src.volume_shape)
    shape = tuple(r.stop - r.start for r in box)
    _check_sizes(block, halo)
    blk = tuple(block) if block is not None else (tuple(default_block) if default_block is not None else shape)
    blk = tuple(min(int(b), int(n)) for b, n in zip(blk, shape))
    plan = make_plan(src, names, opts, blk, tuple(halo) if halo is not None else DEFAULT_HALO)
    return RegionReader(src, box, plan)


def _warn_empty(reader: RegionReader, where: str, flag: str) -> None:
    log.warning(
        f"{where}0 objects (foreground {reader.plan.fg_text} never above {flag} "
        f"{reader.plan.t_fg:g}): lower the threshold or check the channel"
    )


def segment(
    prob: Any,
    options: SegmentOptions | None = None,
    *,
    block: Sequence[int] | None = None,
    halo: Sequence[int] | None = None,
    roi: Sequence[slice] | None = None,
    channel_names: Sequence[str] | None = None,
    key: str | None = None,
    output: str | os.PathLike | None = None,
    overwrite: bool = False,
    **overrides: Any,
) -> np.ndarray:
    """Instance labels ``(Z, Y, X)`` int32 from probabilities, in memory (see :mod:`slicewise.segment`).

    ``prob``: ``(C, Z, Y, X)``, ``(Z, Y, X)`` or ``(Y, X)`` array (labels ``(1, Y, X)``), or a path (``key``
    selects the dataset). ``options``: :class:`~slicewise.segment.settings.SegmentOptions`; ``overrides``: any
    of its fields (``segment(p, mode="watershed")``). ``channel_names`` override the names stored in the file.
    ``block`` (default: the whole volume, one block) and ``halo`` run the block-wise algorithm in memory;
    ``roi`` (z, y, x slices in source-volume coordinates) segments a box. With ``output`` the labels are
    written block-wise there too (:func:`segment_to`; existing files need ``overwrite``) and read back.
    """
    opts = _checked(options, overrides, halo)
    if output is not None:
        res = segment_to(
            prob,
            output,
            opts,
            block=block,
            halo=halo,
            roi=roi,
            channel_names=channel_names,
            key=key,
            overwrite=overwrite,
        )
        return np.asarray(open_volume(res.path)[...], np.int32)
    reader = _prepare(prob, opts, key, channel_names, roi, block, halo, None)
    out = np.zeros(reader.shape, np.int32)
    if run_passes(reader, out) == 0:
        _warn_empty(reader, "", "foreground_threshold")
    return out


def segment_to(
    prob: Any,
    output: str | os.PathLike,
    options: SegmentOptions | None = None,
    *,
    block: Sequence[int] | None = None,
    halo: Sequence[int] | None = None,
    roi: Sequence[slice] | None = None,
    channel_names: Sequence[str] | None = None,
    key: str | None = None,
    overwrite: bool = False,
    resume: bool = True,
    **overrides: Any,
) -> Segmented:
    """Segment block by block from a (lazy) probability map into a label file (.zarr / .h5 / .tif), int32.

    ``block`` (z, y, x; default :data:`~slicewise.segment.settings.DEFAULT_BLOCK` clipped to the volume) bounds
    the memory; ``halo`` (default :data:`~slicewise.segment.settings.DEFAULT_HALO`) is the watershed context.
    ``options`` / ``overrides`` as :func:`segment`. The output is checked before any work, claimed, written to
    a temporary sibling and renamed when complete; its ``offset`` attribute (Zarr / HDF5) records where the
    labels start in the source volume.

    Resumable: the passes keep their scratch arrays and results in ``.<output name>.state/`` next to the
    output (:mod:`slicewise.segment.resume`); a run that is interrupted or fails (other than by refusing its
    input) leaves it, and rerunning the same command skips the finished passes and blocks (the input must
    be unchanged: else a one-line error).
    Other settings, ``overwrite`` or ``resume=False`` start afresh. The folder is deleted on success.
    """
    opts = _checked(options, overrides, halo)
    out_path = check_output_path(output, overwrite=overwrite, inputs=(prob,))
    reader = _prepare(prob, opts, key, channel_names, roi, block, halo, DEFAULT_BLOCK)
    offset = tuple(int(o + s) for o, s in zip(reader.src.offset, reader.origin))
    fingerprint = {
        "options": opts.model_dump(),
        "channels": reader.src.channels,
        "names": reader.plan.names,
        "origin": list(reader.origin),
        "shape": list(reader.shape),
        "offset": list(offset),
        "block": list(reader.plan.block),
        "halo": list(reader.plan.halo),
    }
    store = create_array_store(
        out_path, reader.shape, np.int32, chunks=reader.plan.block, attrs={"offset": list(offset)}, overwrite=overwrite
    )
    state: JobState | None = None
    hint = f"rerun the same command to resume: finished passes and blocks are kept in {state_folder(out_path)}"
    try:
        identity = input_identity_of(reader.src, prob if isinstance(prob, (str, os.PathLike)) else None)
        state = JobState.open(out_path, fingerprint, identity, resume=resume and not overwrite)
        with resume_hint(hint):
            n = run_passes(reader, store, state)
        path = store.finalize()
    except BaseException as err:
        store.abort()
        if isinstance(err, InputError) and state is not None:  # the input was refused: nothing to resume
            state.remove()
        raise
    state.remove()
    if n == 0:
        _warn_empty(reader, f"{path}: ", "--foreground-threshold")
    return Segmented(path, n, reader.shape, offset, reader.plan.fg_text)  # type: ignore[arg-type]
