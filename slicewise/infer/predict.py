"""Whole-volume 2.5D sliding-window prediction: in memory, chunked/streaming with resume, or as a dask graph.

For every centre slice ``z`` the k-slice stack comes from :func:`slicewise.data.stacking.stack_slices`
(channel ``c`` ↔ slice ``z + (c − r)·dz``), intensities from :func:`to_unit_float`. Each plane is cut
into tiles by :mod:`slicewise.infer.tiling`; tiles of several slices and positions are batched
together; per-tile outputs are activated (softmax over the ``"seg"`` head, sigmoid for
``"boundary"``, raw for ``"distance"`` and any other head) and blended with the Gaussian weights:
``Σ w·p / Σ w``.

Outputs: probabilities float32 ``(C, Z, Y, X)`` (seg classes then extra heads, in the model's
channel order; names ``class0 … classN-1`` then the head names) and/or labels ``(Z, Y, X)``
(argmax over the seg classes; uint8, uint16 beyond 255 classes).

Files (written through the data layer / ``atomic_path``):

- ``.zarr`` (Zarr format 2, like the data layer): a group with arrays ``probabilities``
  ``(C, Z, Y, X)`` and/or ``labels``; attributes ``channels`` (names) and ``slicewise_predict``
  (the settings used).
- ``.h5/.hdf5/.hdf``: datasets ``probabilities`` and/or ``labels`` with the same attributes (JSON strings).
- ``.tif/.tiff``: one array, so ``output_kind`` must be ``probabilities`` or ``labels``;
  probabilities are stored channel-last ``Z×Y×X×C`` (the data layer's volume layout, readable by
  ``open_volume``); :func:`slicewise.infer.segment` moves the channels back first.

Chunked / streaming (``chunk_z=N``, output must be ``.zarr``): centre slices are processed in
z-chunks of N. A chunk reads only the slices its stacks need (the chunk plus a halo of ``r·dz``
slices each side, reflected at the volume ends exactly like the in-memory path) and the **full
plane** in Y/X, so tiling and blending are the same as in memory and the result equals the
in-memory prediction (up to float round-off from different batch composition). Each finished
chunk is written to a temporary sibling ``.<stem>.partial.zarr`` and marked in its ``done``
array (one zarr chunk per z-chunk, so parallel workers never write the same file). An interrupted
run leaves that folder in place; rerunning the same command with the same model and settings
resumes and skips finished chunks (other settings start afresh). When every chunk is done the
marker array is dropped and the folder is renamed to the output.

Dask (``scheduler="dask"`` or :func:`predict_dask`): the same chunks as ``dask.delayed`` tasks,
computed with ``dask.compute``. With a ``dask.distributed`` cluster, create the client first
(``from dask.distributed import Client; Client("tcp://scheduler:8786")``) then call
``predict(model, "in.zarr", output="shared/out.zarr", chunk_z=16, scheduler="dask")``: the client
becomes the default scheduler and the chunks spread over the workers. The input should then be a
path (workers open it themselves) and the output on storage every worker can write.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from slicewise.data.io import as_volume
from slicewise.data.stacking import check_stack_params, stack_slices, to_unit_float
from slicewise.errors import InputError
from slicewise.infer.tiling import (
    effective_tile,
    gaussian_weight,
    iter_batches,
    pad_to_tile,
    tile_starts,
    weight_sum,
)
from slicewise.utils.atomic import atomic_path, check_output_path
from slicewise.utils.device import resolve_device
from slicewise.utils.progress import progress as _progress

OutputKind = Literal["probabilities", "labels", "both"]
OUTPUT_KINDS: tuple[str, ...] = ("probabilities", "labels", "both")
ZARR_SUFFIXES = (".zarr",)
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf")
TIFF_SUFFIXES = (".tif", ".tiff")
PROB_KEY, LABEL_KEY, DONE_KEY = "probabilities", "labels", "done"
DEFAULT_CHUNK_Z = 16


@dataclass(frozen=True)
class Plan:
    """Resolved prediction settings (JSON-ready; also the resume fingerprint with the model hash)."""

    shape: tuple[int, ...]
    k: int
    dz: int
    border: str
    tile: tuple[int, int]
    overlap: float
    batch_size: int
    tta: bool
    device: str
    heads: tuple[tuple[str, int, int], ...]
    out_channels: int
    output_kind: str
    chunk_z: int
    model_hash: str = field(default="")
    source: str = field(default="")

    @property
    def channel_names(self) -> list[str]:
        """Output channel names: ``class<i>`` for the seg head, the head name (``name<i>`` if wider) else."""
        names = [f"ch{i}" for i in range(self.out_channels)]
        for name, start, stop in self.heads:
            for i in range(start, stop):
                names[i] = f"class{i - start}" if name == "seg" else (name if stop - start == 1 else f"{name}{i - start}")
        return names

    @property
    def n_classes(self) -> int:
        """Number of seg classes (0 if the model has no ``seg`` head)."""
        return next((stop - start for name, start, stop in self.heads if name == "seg"), 0)


def _model_hash(model: Any) -> str:
    import torch

    h = hashlib.sha1()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def _heads(model: Any) -> tuple[tuple[str, int, int], ...]:
    heads = getattr(model, "heads", None) or {"seg": slice(0, int(model.out_channels))}
    out = []
    for name, sl in heads.items():
        start, stop, _ = sl.indices(int(model.out_channels))
        out.append((str(name), start, stop))
    return tuple(sorted(out, key=lambda h: h[1]))


def _close(volume: Any, source: Any) -> None:
    """Close a volume this module opened from a path (HDF5 / TIFF handles)."""
    if isinstance(source, (str, os.PathLike)) and hasattr(volume, "close"):
        volume.close()


def make_plan(
    model: Any,
    shape: tuple[int, ...],
    *,
    tile: int | tuple[int, int] = (256, 256),
    overlap: float = 0.25,
    batch_size: int = 8,
    k: int | None = None,
    dz: int = 1,
    border: str = "reflect",
    tta: bool = False,
    device: str | None = None,
    output_kind: str = "probabilities",
    chunk_z: int | None = None,
) -> Plan:
    """Check the model against the input shape and settings; raise one-line errors on mismatch."""
    if len(shape) not in (3, 4):
        raise InputError(f"input has shape {tuple(shape)}: expected Z×Y×X (grayscale) or Z×Y×X×C (colour); a 2-D image is depth 1")
    colours = int(shape[3]) if len(shape) == 4 else 1
    k = int(model.in_slices) if k is None else int(k)
    if border == "skip":
        raise InputError("border='skip' leaves edge slices without a prediction: use reflect or replicate")
    check_stack_params(int(shape[0]), k, dz, border)
    if k * colours != int(model.in_channels):
        model_colours = int(model.in_channels) // max(1, int(model.in_slices))
        raise InputError(
            f"the model takes {model.in_channels} input channels (in_slices={model.in_slices} × {model_colours} colour) "
            f"but the input gives {k * colours} (k={k} × {colours} colour, shape {tuple(shape)}): "
            f"use a model trained for this kind of input or convert the input"
        )
    if output_kind not in OUTPUT_KINDS:
        raise InputError(f"output kind {output_kind!r} is unknown: use one of {', '.join(OUTPUT_KINDS)}")
    tt = (int(tile), int(tile)) if np.ndim(tile) == 0 else tuple(int(t) for t in tile)  # type: ignore[arg-type]
    if len(tt) != 2:
        raise InputError(f"tile {tile} must be one size or (height, width)")
    tile_starts(1, tt[0], overlap)
    if int(batch_size) < 1:
        raise InputError(f"batch size {batch_size} must be >= 1")
    div = int(getattr(model, "size_divisor", 1) or 1)
    eff = (effective_tile(shape[1], tt[0], div), effective_tile(shape[2], tt[1], div))
    if hasattr(model, "check_input_size"):
        model.check_input_size(*eff)
    heads = _heads(model)
    if output_kind != "probabilities" and not any(h[0] == "seg" for h in heads):
        raise InputError("the model has no 'seg' head, so there are no labels: use output_kind='probabilities'")
    depth = int(shape[0])
    cz = depth if chunk_z is None else int(chunk_z)
    if cz < 1:
        raise InputError(f"chunk_z {chunk_z} must be >= 1 slices")
    return Plan(
        shape=tuple(int(s) for s in shape), k=k, dz=int(dz), border=border, tile=eff, overlap=float(overlap),
        batch_size=int(batch_size), tta=bool(tta), device=str(resolve_device(device)), heads=heads,
        out_channels=int(model.out_channels), output_kind=output_kind, chunk_z=min(cz, depth),
    )


def _activate(logits: Any, heads: tuple[tuple[str, int, int], ...]) -> Any:
    """Softmax over ``seg``, sigmoid for ``boundary``, identity for the rest (float32)."""
    import torch

    logits = logits.float()
    parts = []
    for name, start, stop in heads:
        x = logits[:, start:stop]
        parts.append(torch.softmax(x, dim=1) if name == "seg" else torch.sigmoid(x) if name == "boundary" else x)
    return torch.cat(parts, dim=1) if parts else logits


def _augmentations(plan: Plan) -> list[tuple[tuple[int, ...], bool]]:
    """(flip dims, z-reverse) pairs: identity only, or flips in H, W, both, each with/without z-reversal."""
    if not plan.tta:
        return [((), False)]
    flips: list[tuple[int, ...]] = [(), (2,), (3,), (2, 3)]
    zrev = [False, True] if plan.k > 1 else [False]
    return [(f, z) for z in zrev for f in flips]


def _forward(model: Any, x: Any, plan: Plan) -> Any:
    """Activated model output (float32 tensor on the device) for a batch of stacks ``x``
    (B, k·C, h, w) in [0, 1] on the device, averaged over the TTA variants."""
    import torch

    cuda = plan.device.startswith("cuda")
    colours = x.shape[1] // plan.k
    acc = None
    augs = _augmentations(plan)
    for dims, zrev in augs:
        xi = x
        if zrev:
            xi = xi.reshape(xi.shape[0], plan.k, colours, *xi.shape[2:]).flip(1).reshape(x.shape)
        if dims:
            xi = xi.flip(dims)
        if cuda:
            xi = xi.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=cuda):
            y = model(xi)
        y = _activate(y, plan.heads)
        if dims:
            y = y.flip(dims)
        acc = y if acc is None else acc + y
    assert acc is not None
    return acc / len(augs) if len(augs) > 1 else acc


def predict_centres(model: Any, volume: Any, centres: np.ndarray, plan: Plan) -> np.ndarray:
    """Blended probabilities ``(C, len(centres), Y, X)`` float32 for the given centre slices (full planes).

    Tiles are cut on the host, run in batches on ``plan.device``, and accumulated there
    (weighted sum, then division by the weight sum)."""
    import torch

    stacks = to_unit_float(stack_slices(volume, centres, plan.k, plan.dz, plan.border))
    n, _, h, w = stacks.shape
    padded = pad_to_tile(stacks, plan.tile)
    dev = torch.device(plan.device)
    acc = torch.zeros((n, plan.out_channels, *padded.shape[-2:]), dtype=torch.float32, device=dev)
    g = torch.from_numpy(np.array(gaussian_weight(plan.tile))).to(dev)
    with torch.inference_mode():
        for batch in iter_batches(n, (h, w), plan.tile, plan.overlap, plan.batch_size):
            x = torch.from_numpy(np.stack([padded[i, :, ys, xs] for i, ys, xs in batch]))
            y = _forward(model, x.to(dev, non_blocking=True), plan) * g
            for (i, ys, xs), yi in zip(batch, y):
                acc[i, :, ys, xs] += yi
        acc /= torch.from_numpy(weight_sum((h, w), plan.tile, plan.overlap)).to(dev)
        out = acc[:, :, :h, :w].permute(1, 0, 2, 3).contiguous().cpu().numpy()
    return out


def labels_from(probs: np.ndarray, plan: Plan) -> np.ndarray:
    """Argmax over the seg channels of ``(C, Z, Y, X)`` → ``(Z, Y, X)`` uint8 (uint16 beyond 255 classes)."""
    start, stop = next((a, b) for name, a, b in plan.heads if name == "seg")
    dtype = np.uint8 if stop - start <= 256 else np.uint16
    return np.argmax(probs[start:stop], axis=0).astype(dtype)


def chunk_ranges(depth: int, chunk_z: int) -> list[tuple[int, int]]:
    """``[(z0, z1), …]`` z-chunks of ``chunk_z`` centre slices covering ``[0, depth)``."""
    return [(z0, min(z0 + chunk_z, depth)) for z0 in range(0, depth, chunk_z)]


def _prepare_model(model: Any, plan: Plan) -> Any:
    import torch

    model.eval()
    model.to(plan.device)
    if plan.device.startswith("cuda"):
        model.to(memory_format=torch.channels_last)
    return model


def _suffix(path: Path) -> str:
    return path.suffix.lower()


def _check_output(output: str | os.PathLike, output_kind: str, overwrite: bool, streaming: bool) -> Path:
    out = Path(output)
    sfx = _suffix(out)
    if sfx not in ZARR_SUFFIXES + HDF5_SUFFIXES + TIFF_SUFFIXES:
        raise InputError(f"output {out} has an unknown extension: use .zarr, .h5/.hdf5 or .tif")
    if streaming and sfx not in ZARR_SUFFIXES:
        raise InputError(f"chunked / dask prediction writes Zarr: give an output ending in .zarr, not {out.name}")
    if sfx in TIFF_SUFFIXES and output_kind == "both":
        raise InputError("a TIFF holds one array: choose probabilities or labels, or write .zarr / .h5 for both")
    return check_output_path(out, overwrite=overwrite)


def _write_in_memory(output: Path, probs: np.ndarray | None, labels: np.ndarray | None, plan: Plan, overwrite: bool) -> None:
    """Write finished arrays through the data layer: TIFF (one array; probabilities channel-last
    Z×Y×X×C, the data layer's volume layout) or HDF5 (datasets ``probabilities`` / ``labels``)."""
    from slicewise.data.io import write_volume

    if _suffix(output) in TIFF_SUFFIXES:
        write_volume(output, np.moveaxis(probs, 0, -1) if probs is not None else labels, overwrite=overwrite)
        return
    import h5py

    with atomic_path(output, overwrite=overwrite) as tmp:
        if probs is not None:
            write_volume(tmp, probs, key=PROB_KEY, chunks=(1, 1, min(plan.shape[1], 512), min(plan.shape[2], 512)))
        if labels is not None:
            write_volume(tmp, labels, key=LABEL_KEY)
        with h5py.File(tmp, "r+") as f:
            f.attrs["channels"] = json.dumps(plan.channel_names)
            f.attrs["slicewise_predict"] = json.dumps(_plan_attrs(plan))


def _plan_attrs(plan: Plan) -> dict[str, Any]:
    d = asdict(plan)
    d.pop("device")
    d.pop("batch_size")
    return json.loads(json.dumps(d))


def partial_path(output: str | os.PathLike) -> Path:
    """The temporary Zarr a chunked run writes into (kept across interruptions for resume)."""
    out = Path(output)
    return out.with_name(f".{out.stem}.partial{out.suffix}")


def _open_partial(output: Path, plan: Plan) -> Any:
    """Open the partial Zarr for resume if its settings match ``plan``, else create it afresh."""
    import zarr

    part = partial_path(output)
    fp = _plan_attrs(plan)
    if part.exists():
        try:
            g = zarr.open_group(str(part), mode="r+")
            if g.attrs.get("slicewise_predict") == fp and DONE_KEY in g:
                return g
        except Exception:  # noqa: BLE001 - any unreadable leftover is replaced
            pass
        shutil.rmtree(part, ignore_errors=True)
    z, y, x = plan.shape[:3]
    cz = plan.chunk_z
    cy, cx = min(y, 1024), min(x, 1024)
    g = zarr.open_group(str(part), mode="w", zarr_format=2)
    if plan.output_kind in ("probabilities", "both"):
        g.create_array(PROB_KEY, shape=(plan.out_channels, z, y, x), chunks=(1, cz, cy, cx), dtype="float32", fill_value=0.0)
    if plan.output_kind in ("labels", "both"):
        dtype = "uint8" if plan.n_classes <= 256 else "uint16"
        g.create_array(LABEL_KEY, shape=(z, y, x), chunks=(cz, cy, cx), dtype=dtype, fill_value=0)
    n = len(chunk_ranges(z, cz))
    g.create_array(DONE_KEY, shape=(n,), chunks=(1,), dtype="uint8", fill_value=0)
    g.attrs["channels"] = plan.channel_names
    g.attrs["slicewise_predict"] = fp
    return g


def _finished_chunks(group: Any) -> np.ndarray:
    return np.asarray(group[DONE_KEY][:]).astype(bool)


def _write_chunk(group: Any, index: int, z0: int, z1: int, probs: np.ndarray, plan: Plan) -> None:
    if PROB_KEY in group:
        group[PROB_KEY][:, z0:z1] = probs
    if LABEL_KEY in group:
        group[LABEL_KEY][z0:z1] = labels_from(probs, plan)
    group[DONE_KEY][index] = 1


def run_chunk(model: Any, source: Any, key: str | None, part: str, index: int, z0: int, z1: int, plan: Plan) -> int:
    """One chunk task: predict centres ``z0:z1`` (opening ``source`` if it is a path), write them into
    the partial Zarr ``part``, mark chunk ``index`` done. Returns ``index``."""
    import zarr

    volume = as_volume(source, key=key)
    try:
        probs = predict_centres(model, volume, np.arange(z0, z1), plan)
    finally:
        _close(volume, source)
    _write_chunk(zarr.open_group(part, mode="r+"), index, z0, z1, probs, plan)
    return index


def _finalise(output: Path, overwrite: bool) -> Path:
    import zarr

    part = partial_path(output)
    g = zarr.open_group(str(part), mode="r+")
    if not _finished_chunks(g).all():
        raise InputError(f"prediction into {part} is incomplete: rerun the same command to resume")
    del g[DONE_KEY]
    with atomic_path(output, overwrite=overwrite) as tmp:
        os.replace(part, tmp)
    return output


def _stream(
    model: Any, source: Any, key: str | None, volume: Any, output: Path, plan: Plan, overwrite: bool,
    show: bool, scheduler: str | None, on_chunk: Callable[[int], None] | None,
) -> Path:
    group = _open_partial(output, plan)
    done = _finished_chunks(group)
    todo = [(i, z0, z1) for i, (z0, z1) in enumerate(chunk_ranges(plan.shape[0], plan.chunk_z)) if not done[i]]
    part = str(partial_path(output))
    if scheduler is None:
        for i, z0, z1 in _progress(todo, desc="predict chunks", total=len(todo), disable=not show or None):
            probs = predict_centres(model, volume, np.arange(z0, z1), plan)
            _write_chunk(group, i, z0, z1, probs, plan)
            if on_chunk is not None:
                on_chunk(i)
    else:
        import dask

        src = source if isinstance(source, (str, os.PathLike)) else volume
        model_d = dask.delayed(model, name=f"slicewise-model-{plan.model_hash}", traverse=False)
        src_d = src if isinstance(src, (str, os.PathLike)) else dask.delayed(src, name=f"slicewise-input-{id(src)}", traverse=False)
        tasks = [dask.delayed(run_chunk, pure=False)(model_d, src_d, key, part, i, z0, z1, plan) for i, z0, z1 in todo]
        dask.compute(*tasks, scheduler=None if scheduler == "dask" else scheduler)
    return _finalise(output, overwrite)


def predict(
    model: Any,
    volume: Any,
    *,
    tile: int | tuple[int, int] = (256, 256),
    overlap: float = 0.25,
    batch_size: int = 8,
    k: int | None = None,
    dz: int = 1,
    border: str = "reflect",
    tta: bool = False,
    device: str | None = None,
    output: str | os.PathLike | None = None,
    output_kind: OutputKind = "probabilities",
    chunk_z: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    key: str | None = None,
    scheduler: str | None = None,
    on_chunk: Callable[[int], None] | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray] | Path:
    """Predict a whole volume slice by slice from 2.5D stacks with Gaussian-blended tiles.

    ``volume``: Z×Y×X or Z×Y×X×C array (numpy, torch, h5py, zarr; a 2-D image is depth 1),
    :class:`Volume`, or a path (``key`` for HDF5/Zarr).
    ``k`` defaults to ``model.in_slices``; ``dz`` is the z-step between context slices.
    ``tile`` (pixels) is shrunk on short axes to a multiple of ``model.size_divisor``; ``overlap``
    is a fraction of the tile. ``tta``: average over H/W flips and z-reversal of the stack.
    ``device``: ``None``/``"auto"`` picks CUDA when available (bf16 autocast, channels_last), else CPU; the model
    is moved there and put in eval mode.

    Without ``output``: returns probabilities ``(C, Z, Y, X)`` float32, labels ``(Z, Y, X)`` or
    ``(probabilities, labels)`` for ``output_kind="both"``. With ``output``: writes it (see the
    module docstring for layouts) and returns its Path. ``chunk_z`` or ``scheduler`` (``"dask"``
    for dask's default / a distributed client, or a dask scheduler name such as ``"threads"``,
    ``"sync"``) selects the chunked, resumable path, which needs a ``.zarr`` output; a ``.zarr``
    output always takes that path (``chunk_z`` default 16). ``on_chunk(i)``
    is called after chunk ``i`` is written (sequential path only).
    """
    streaming = chunk_z is not None or scheduler is not None
    out_path = _check_output(output, output_kind, overwrite, streaming) if output is not None else None
    if streaming and out_path is None:
        raise InputError("chunked / dask prediction streams to disk: give an output path ending in .zarr")
    if chunk_z is None and out_path is not None and _suffix(out_path) in ZARR_SUFFIXES:
        chunk_z = DEFAULT_CHUNK_Z
    vol = as_volume(volume, key=key)
    try:
        plan = make_plan(
            model, tuple(vol.shape), tile=tile, overlap=overlap, batch_size=batch_size, k=k, dz=dz, border=border,
            tta=tta, device=device, output_kind=output_kind, chunk_z=chunk_z,
        )
        model = _prepare_model(model, plan)
        if out_path is not None and _suffix(out_path) in ZARR_SUFFIXES:
            src = str(Path(volume).resolve()) if isinstance(volume, (str, os.PathLike)) else "array"
            plan = replace(plan, model_hash=_model_hash(model), source=f"{src}:{key or ''}")
            return _stream(model, volume, key, vol, out_path, plan, overwrite, progress, scheduler, on_chunk)
        probs = _predict_all(model, vol, plan, progress)
    finally:
        _close(vol, volume)
    labels = labels_from(probs, plan) if output_kind != "probabilities" else None
    if out_path is not None:
        _write_in_memory(out_path, probs if output_kind != "labels" else None, labels, plan, overwrite)
        return out_path
    if output_kind == "both":
        assert labels is not None
        return probs, labels
    return labels if output_kind == "labels" else probs  # type: ignore[return-value]


def _planes_per_step(plan: Plan) -> int:
    """Centre slices stacked at once in memory: enough for about one batch of tiles."""
    n_tiles = len(tile_starts(max(plan.shape[1], plan.tile[0]), plan.tile[0], plan.overlap)) * len(
        tile_starts(max(plan.shape[2], plan.tile[1]), plan.tile[1], plan.overlap)
    )
    return max(1, -(-plan.batch_size // n_tiles))


def _predict_all(model: Any, volume: Any, plan: Plan, show: bool, z0: int = 0, z1: int | None = None) -> np.ndarray:
    """Probabilities ``(C, z1−z0, Y, X)`` of centre slices ``z0 … z1−1`` (default all), a few planes at a time."""
    z1 = plan.shape[0] if z1 is None else z1
    out = np.empty((plan.out_channels, z1 - z0, plan.shape[1], plan.shape[2]), np.float32)
    steps = chunk_ranges(z1 - z0, _planes_per_step(plan))
    for a, b in _progress(steps, desc="predict", total=len(steps), disable=not show or None):
        out[:, a:b] = predict_centres(model, volume, np.arange(z0 + a, z0 + b), plan)
    return out


def predict_slices(
    model: Any, volume: Any, z0: int, z1: int, *, key: str | None = None, progress: bool = False, **settings: Any
) -> np.ndarray:
    """Probabilities ``(C, z1−z0, Y, X)`` float32 of centre slices ``z0 … z1−1`` only, each from its
    stack in the whole volume (so equal to ``predict(model, volume)[:, z0:z1]``); only the slices
    those stacks need are read. ``settings``: :func:`make_plan` keywords (tile, overlap, k, dz, ...)."""
    vol = as_volume(volume, key=key)
    try:
        plan = make_plan(model, tuple(vol.shape), **settings)
        if not 0 <= int(z0) < int(z1) <= plan.shape[0]:
            raise InputError(f"slice range {z0}..{z1} is not inside the volume's 0..{plan.shape[0]}: give 0 <= z0 < z1 <= depth")
        return _predict_all(_prepare_model(model, plan), vol, plan, progress, int(z0), int(z1))
    finally:
        _close(vol, volume)


def predict_dask(model: Any, volume: Any, output: str | os.PathLike, *, chunk_z: int = 16, scheduler: str = "dask", **kwargs: Any) -> Path:
    """:func:`predict` as a dask graph of per-chunk tasks into a ``.zarr`` output (see module docs)."""
    result = predict(model, volume, output=output, chunk_z=chunk_z, scheduler=scheduler, **kwargs)
    assert isinstance(result, Path)
    return result

