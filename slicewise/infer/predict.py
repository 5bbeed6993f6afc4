"""Whole-volume 2.5D sliding-window prediction, block-wise: in memory (:func:`predict`) or into a store
(:func:`predict_to`, resumable, optionally on a dask cluster).

For every centre slice ``z`` the k-slice stack is ``z + (c − r)·dz`` for channel ``c``
(:mod:`slicewise.data.stacking` conventions); each plane is cut into tiles by :mod:`slicewise.data.tiling`;
tiles of several slices and positions are batched; per-tile outputs are activated (softmax over the
``"seg"`` head, sigmoid for ``"boundary"``, raw for ``"distance"`` and any other head) and blended with
Gaussian weights: ``Σ w·p / Σ w``. The volume (or the ROI) is cut into 3-D blocks
(:mod:`slicewise.infer.blocks`), each reading its input with the halo it needs, so the result does not
depend on the block shape and memory is bounded by the block, not the volume or section size.

Input intensities (the one rule, :func:`slicewise.data.io.check_raw`): integer dtypes are divided by their dtype
maximum (uint8 by 255), so integers other than bool/uint8/uint16 must be non-negative and reach 1/256 of their dtype
maximum; float input must be finite and lie in [0, 1] (±1e-6 round-off); complex data is refused. Anything else is
refused in one line unless ``normalize="percentile"``
(CLI ``--normalize percentile``), which maps the 0.1th and 99.9th percentiles of the volume — estimated
from a seeded sample of 16 blocks — to 0 and 1 and clips (for any dtype). NaN/Inf are always refused
(checked in every block as it is read, so before anything is finalized).

Outputs: probabilities float32 ``(C, Z, Y, X)`` (seg classes then extra heads, in the model's channel
order; names from ``model.config.channel_names``, else ``class<i>`` then the head names) and/or labels
``(Z, Y, X)`` (argmax over the seg classes; uint8, uint16 beyond 256 classes). Store layouts, dtypes
(``uint8`` quantization: |Δp| ≤ 1/510) and resume: :mod:`slicewise.data.io.stores`.

Ranges: ``roi`` (``"z0:z1,y0:y1,x0:x1"`` or slices; :mod:`slicewise.data.roi`) restricts the *output*;
context slices and tile halos outside it are still read, so ``predict(..., roi="16:20")`` equals
``predict(...)[:, 16:20]``. The ROI's offset is recorded in the store (``slicewise.offset`` and the NGFF
``translation``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from slicewise import models
from slicewise.data.io import as_volume
from slicewise.data.io.formats import channel_name
from slicewise.data.io.outputs import check_output_path
from slicewise.data.io.stores import check_output_kind, open_prediction_writer, partial_path
from slicewise.data.roi import resolve_roi
from slicewise.data.stacking import check_stack_params
from slicewise.data.tiling import effective_tile, tile_starts
from slicewise.errors import InputError
from slicewise.infer.blocks import (
    DEFAULT_BLOCK,
    Block,
    InputValueError,
    Plan,
    block_tiles,
    iter_predicted_blocks,
    model_hash,
    plan_blocks,
    prepare_model,
    sample_percentiles,
    static_forward,
)
from slicewise.infer.distributed import run_blocks
from slicewise.infer.settings import PredictSettings
from slicewise.utils.atomic import claim_output
from slicewise.utils.device import resolve_device
from slicewise.utils.environment import environment_info
from slicewise.utils.identity import input_identity
from slicewise.utils.progress import progress_counter, status
from slicewise.utils.signals import resume_hint

log = logging.getLogger(__name__)

PROBABILITY_HEADS = ("seg", "boundary")
WHOLE = 2**62  # a block length that make_plan clips to the ROI: whole planes

__all__ = ["make_plan", "predict", "predict_to", "region_text"]


def _settings(settings: PredictSettings | None, overrides: dict[str, Any]) -> PredictSettings:
    return (settings or PredictSettings()).replace(**overrides)


def _heads(model: Any) -> tuple[tuple[str, int, int], ...]:
    heads = getattr(model, "heads", None) or {"seg": slice(0, int(model.out_channels))}
    out = []
    for name, sl in heads.items():
        start, stop, _ = sl.indices(int(model.out_channels))
        out.append((str(name), start, stop))
    return tuple(sorted(out, key=lambda h: h[1]))


def _channel_names(model: Any, heads: tuple[tuple[str, int, int], ...], n: int) -> tuple[str, ...]:
    """``model.config.channel_names`` when it fits, else ``class<i>`` for the seg head and head names."""
    cfg = getattr(model, "config", None)
    names = list(getattr(cfg, "channel_names", None) or [])
    if len(names) == n:
        return tuple(str(v) for v in names)
    out = [f"ch{i}" for i in range(n)]
    for name, start, stop in heads:
        for i in range(start, stop):
            out[i] = channel_name(i - start) if name == "seg" else (name if stop - start == 1 else f"{name}{i - start}")
    return tuple(out)


def _stacking(model: Any, s: PredictSettings) -> tuple[int, str]:
    """(dz, border): the settings' where given, else the model's (a bioimage.io package's), else 1 and reflect."""
    defaults = models.prediction_defaults(model)
    dz = s.dz if s.dz is not None else int(defaults.get("dz", 1))
    return dz, s.border if s.border is not None else str(defaults.get("border", "reflect"))


def _checked_heads(model: Any, s: PredictSettings) -> tuple[tuple[str, int, int], ...]:
    """The model's heads, checked against what the settings store (labels need ``seg``; uint8 needs [0, 1])."""
    heads = _heads(model)
    if s.output_kind != "probabilities" and not any(h[0] == "seg" for h in heads):
        raise InputError("the model has no 'seg' head, so there are no labels: use output_kind='probabilities'")
    raw = [name for name, _, _ in heads if name not in PROBABILITY_HEADS]
    if s.dtype == "uint8" and s.output_kind != "labels" and raw:
        raise InputError(
            f"--dtype uint8 stores probabilities in [0, 1] but head(s) {', '.join(raw)} give unbounded values: "
            "use --dtype float16 or float32"
        )
    return heads


def make_plan(model: Any, shape: Sequence[int], settings: PredictSettings | None = None, **overrides: Any) -> Plan:
    """Check the model against the input shape and settings (one-line errors) and resolve them into a :class:`Plan`."""
    s = _settings(settings, overrides)
    shape = tuple(int(v) for v in shape)
    if len(shape) not in (3, 4):
        raise InputError(
            f"input has shape {shape}: expected Z×Y×X (grayscale) or Z×Y×X×C (color); a 2-D image is depth 1"
        )
    colors = shape[3] if len(shape) == 4 else 1
    k = int(model.in_slices) if s.k is None else s.k
    dz, border = _stacking(model, s)
    check_stack_params(shape[0], k, dz, border)
    if k * colors != int(model.in_channels):
        model_colors = int(model.in_channels) // max(1, int(model.in_slices))
        raise InputError(
            f"the model takes {model.in_channels} input channels (in_slices={model.in_slices} × {model_colors} "
            f"color) but the input gives {k * colors} (k={k} × {colors} color, shape {shape}): "
            f"use a model trained for this kind of input or convert the input"
        )
    tile_starts(1, s.tile[0], s.overlap)
    div = int(getattr(model, "size_divisor", 1) or 1)
    eff = (effective_tile(shape[1], s.tile[0], div), effective_tile(shape[2], s.tile[1], div))
    if hasattr(model, "check_input_size"):
        model.check_input_size(*eff)
    heads = _checked_heads(model, s)
    roi = resolve_roi(s.roi, shape)
    roi_shape = [r.stop - r.start for r in roi]
    block = tuple(min(b, n) for b, n in zip(s.block or DEFAULT_BLOCK, roi_shape))
    out_channels = int(model.out_channels)
    return Plan(
        shape=shape,
        k=k,
        dz=dz,
        border=border,
        tile=eff,
        overlap=s.overlap,
        batch_size=s.batch_size,
        tta=s.tta,
        device=str(resolve_device(s.device)),
        heads=heads,
        out_channels=out_channels,
        channel_names=_channel_names(model, heads, out_channels),
        output_kind=s.output_kind,
        dtype=s.dtype,
        block=block,
        roi=tuple((r.start, r.stop) for r in roi),  # type: ignore[arg-type]
    )


def _plan_for(model: Any, vol: Any, s: PredictSettings) -> Plan:
    plan = make_plan(model, tuple(vol.shape), s)
    if s.normalize == "percentile":
        plan = replace(plan, normalize=sample_percentiles(vol, plan))
        log.info("normalize percentile: intensities %.6g..%.6g map to 0..1", *plan.normalize)  # type: ignore[misc]
    return plan


def _close(volume: Any, source: Any) -> None:
    """Close a volume this module opened from a path (HDF5 / TIFF handles)."""
    if isinstance(source, (str, os.PathLike)) and hasattr(volume, "close"):
        volume.close()


def _tiles(blocks: Sequence[Block], plan: Plan, show: bool, desc: str) -> Any:
    """Tile-level progress over ``blocks`` (so one large block shows progress too): a context giving ``tick``."""
    return progress_counter(desc, sum(block_tiles(b, plan) for b in blocks), " tiles", disable=None if show else True)


def region_text(plan: Plan) -> str:
    """The predicted region for a status line: ``6×512×512 (z 24:30)``; the axes a ROI restricts are named with
    their half-open ranges, a whole volume is its shape alone."""
    size = "×".join(map(str, plan.out_shape))
    cut = [f"{axis} {a}:{b}" for axis, (a, b), n in zip("zyx", plan.roi, plan.shape[:3]) if (a, b) != (0, n)]
    return f"{size} ({', '.join(cut)})" if cut else size


def predict(
    model: Any, volume: Any, settings: PredictSettings | None = None, *, key: str | None = None, **overrides: Any
) -> np.ndarray:
    """Probabilities ``(C, Z, Y, X)`` float32 of ``volume`` (of the ROI if ``roi`` is set), computed block by
    block and assembled in memory (the same code path as :func:`predict_to`).

    ``volume``: Z×Y×X or Z×Y×X×C array (numpy, torch, h5py, zarr; a 2-D image is depth 1), :class:`Volume`,
    or a path (``key`` for HDF5/Zarr). ``settings``: :class:`PredictSettings`; ``overrides``: any of its
    fields (``predict(model, vol, tile=128, roi="16:20")``). Labels: :func:`labels_from`. The model is moved
    to the device and put in eval mode.
    """
    s = _settings(settings, overrides)
    if s.dask is not None:
        raise InputError(
            "dask runs write to a store: use predict_to(model, input, 'out.zarr', dask=...) instead of predict"
        )
    if s.block is None:
        s = s.replace(block=(DEFAULT_BLOCK[0], WHOLE, WHOLE))
    vol = as_volume(volume, key=key)
    try:
        plan = _plan_for(model, vol, s)
        model = prepare_model(model, plan)
        net = static_forward(model, plan, s.compile, s.cuda_graphs)
        out = np.empty((plan.out_channels, *plan.out_shape), np.float32)
        blocks = plan_blocks(plan.shape[:3], plan.block, plan.roi_slices)
        with _tiles(blocks, plan, s.progress, "predict") as tick:
            for block, probs in iter_predicted_blocks(net, vol, blocks, plan, tick=tick):
                out[(slice(None), *block.local(plan.offset))] = probs
        return out
    finally:
        _close(vol, volume)


def _load(model: Any) -> Any:
    return models.load_model(model) if isinstance(model, (str, os.PathLike)) else model


def predict_to(
    model: Any,
    input: Any,
    output: str | os.PathLike,
    settings: PredictSettings | None = None,
    *,
    key: str | None = None,
    overwrite: bool = False,
    resume: bool = True,
    **overrides: Any,
) -> Path:
    """Predict ``input`` block by block into ``output`` (``.zarr`` OME-Zarr, ``.h5``, ``.tif``; see
    :mod:`slicewise.data.io.stores`) and return its path.

    The output is checked (exists without ``overwrite``, unwritable location) and claimed before the model
    is used or anything is computed; a second writer to the same output is refused in one line. Finished
    blocks are recorded in the partial output (a hidden sibling, deleted when nothing finished or the
    input's values are unusable), so an interrupted run resumes when rerun with the same settings and
    model, provided the input is unchanged (its identity is recorded at the start; a changed input is
    refused in one line). ``overwrite`` (or ``resume=False``) discards a partial output.
    ``model``: a model or a model file. With ``dask`` (``"local:N"`` / ``"tcp://host:port"``) the pending
    blocks run on a dask.distributed cluster (:func:`slicewise.infer.distributed.run_blocks`); the input must
    then be a path every worker can read.
    """
    s = _settings(settings, overrides)
    out = check_output_path(check_output_kind(output, s.output_kind), overwrite=overwrite, inputs=(input, model))
    if s.dask is not None and not isinstance(input, (str, os.PathLike)):
        raise InputError("--dask workers open the input themselves: give the input as a file path, not an array")
    with (
        claim_output(out),
        resume_hint(f"rerun the same command to resume: finished blocks are kept in {partial_path(out)}"),
    ):
        net = _load(model)
        vol = as_volume(input, key=key)
        try:
            plan = _plan_for(net, vol, s)
            net = prepare_model(net, plan)
            plan = replace(plan, model_hash=model_hash(net))
            ident = input_identity(vol, input if isinstance(input, (str, os.PathLike)) else None)
            writer = open_prediction_writer(
                out,
                plan,
                resume=resume,
                overwrite=overwrite,
                identity=ident,
                voxel_size=vol.voxel_size,
                environment=environment_info(plan.device),
            )
            try:
                done = writer.done()
                todo = [b for b in plan_blocks(plan.shape[:3], plan.block, plan.roi_slices) if b.index not in done]
                status(
                    "predicting %s into %s: %d block(s) of %s voxels%s",
                    region_text(plan),
                    out,
                    len(todo),
                    "×".join(map(str, plan.block)),
                    f", resuming ({len(done)} done)" if done else "",
                )
                if s.dask is not None:
                    src = model if isinstance(model, (str, os.PathLike)) else net
                    run_blocks(s.dask, src, str(input), key, str(writer.partial), todo, plan)
                else:
                    _write_blocks(
                        static_forward(net, plan, s.compile, s.cuda_graphs), vol, todo, plan, writer, s.progress
                    )
                return writer.finalize()
            except InputValueError:
                writer.abort(keep=False)
                raise
            except BaseException:
                writer.abort(keep=bool(writer.done()))  # resumable if anything finished, else leave nothing
                raise
        finally:
            _close(vol, input)


def _write_blocks(model: Any, vol: Any, blocks: list[Block], plan: Plan, writer: Any, show: bool) -> None:
    with _tiles(blocks, plan, show, "predict") as tick:
        for block, probs in iter_predicted_blocks(model, vol, blocks, plan, tick=tick):
            writer.write_block(block, probs)
            writer.mark_done(block.index)
