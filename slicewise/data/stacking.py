"""2.5D stacking: the one function that turns a volume into k-slice channel stacks.

Convention (used by training, prediction and diagnostics alike): for centre slice ``z``,
``k = 2r+1`` slices are taken at ``z - r·d … z + r·d`` (``d`` = z-step); channel ``c`` holds
the slice at offset ``(c - r)·d``. A multichannel volume (Z×Y×X×C, e.g. RGB) gives
``k·C`` channels in slice-major order: channel ``c·C + j`` is color ``j`` of slice ``c``.

Border policies for context slices outside ``[0, depth)``:

- ``reflect`` (default): mirror without repeating the edge slice (…, 2, 1 | 0, 1, 2, …),
  as ``numpy.pad(mode="reflect")`` and PyTorch do;
- ``replicate``: repeat the edge slice;
- ``skip``: centres without full context are not used (:func:`valid_centres` omits them,
  :func:`stack_indices` returns ``None``).

The whole window must fit in the volume, ``(k-1)·d + 1 <= depth``, otherwise reflection would
wrap more than once; a 2-D image (depth 1) therefore takes ``k = 1``.
"""

from __future__ import annotations

import typing
from typing import Any, Literal

import numpy as np

from slicewise.errors import InputError

#: the border policies (the one definition: ``slicewise.config`` and the CLI take it from here).
Border = Literal["reflect", "replicate", "skip"]
BORDERS: tuple[str, ...] = typing.get_args(Border)


def check_stack_params(depth: int, k: int = 3, dz: int = 1, border: str = "reflect") -> int:
    """Validate k, d, border against a volume depth; return r = (k-1)/2."""
    if not isinstance(k, (int, np.integer)) or k < 1 or k % 2 == 0:
        raise InputError(
            f"in_slices k={k} must be a positive odd number (1, 3, 5, ...): "
            f"the centre slice needs equal context on both sides"
        )
    if not isinstance(dz, (int, np.integer)) or dz < 1:
        raise InputError(f"z-step d={dz} must be an integer >= 1")
    if border not in BORDERS:
        raise InputError(f"border policy {border!r} is unknown: use one of {', '.join(BORDERS)}")
    if depth < 1:
        raise InputError("the volume is empty (depth 0): check the input file")
    span = (k - 1) * dz + 1
    if span > depth:
        raise InputError(
            f"k={k} slices at z-step {dz} span {span} slices but the volume has only {depth}: "
            f"lower k or the z-step (a 2-D image takes k=1)"
        )
    return (k - 1) // 2


def stack_indices(z: int, depth: int, k: int = 3, dz: int = 1, border: str = "reflect") -> np.ndarray | None:
    """Slice indices (length k) feeding centre ``z``; ``None`` under ``skip`` without full context."""
    r = check_stack_params(depth, k, dz, border)
    if not 0 <= z < depth:
        raise InputError(f"centre slice z={z} is outside the volume (depth {depth})")
    idx = z + (np.arange(k) - r) * dz
    if border == "skip":
        return None if (idx[0] < 0 or idx[-1] >= depth) else idx
    if border == "replicate":
        return np.clip(idx, 0, depth - 1)
    idx = np.where(idx < 0, -idx, idx)
    return np.where(idx >= depth, 2 * (depth - 1) - idx, idx)


def valid_centres(depth: int, k: int = 3, dz: int = 1, border: str = "reflect") -> np.ndarray:
    """All centre slices that produce a stack under ``border`` (every slice unless ``skip``)."""
    r = check_stack_params(depth, k, dz, border)
    if border == "skip":
        return np.arange(r * dz, depth - r * dz)
    return np.arange(depth)


def stack_index_tensor(centres: Any, depth: int, k: int = 3, dz: int = 1, border: str = "reflect") -> Any:
    """Torch counterpart of :func:`stack_indices` for a batch: ``centres`` (N,) int tensor on any device →
    (N, k) int64 slice indices on the same device, computed there (no host round trip). Under ``skip``
    a centre without full context raises :class:`InputError` (that check reads one flag back to the host)."""
    import torch

    r = check_stack_params(depth, k, dz, border)
    z = torch.as_tensor(centres).to(torch.int64).reshape(-1)
    idx = z[:, None] + (torch.arange(k, device=z.device) - r) * dz
    if border == "skip":
        if bool(((idx[:, 0] < 0) | (idx[:, -1] >= depth)).any()):
            raise InputError(
                f"a centre has no full {k}-slice context under border='skip': take centres from valid_centres()"
            )
        return idx
    if border == "replicate":
        return idx.clamp(0, depth - 1)
    idx = torch.where(idx < 0, -idx, idx)
    return torch.where(idx >= depth, 2 * (depth - 1) - idx, idx)


def _crop_grid(origins: Any, size: tuple[int, int]) -> tuple[Any, Any]:
    """Per-sample row and column indices (N, ph), (N, pw) of crops at ``origins`` (N, 2) (torch)."""
    import torch

    ph, pw = (int(s) for s in size)
    o = torch.as_tensor(origins).to(torch.int64).reshape(-1, 2)
    return o[:, :1] + torch.arange(ph, device=o.device), o[:, 1:] + torch.arange(pw, device=o.device)


def crop_gather(volume: Any, index: Any, rows: Any, cols: Any, transpose: Any = None) -> Any:
    """``volume[index[n, c], rows[n, i], cols[n, j]]`` → ``(N, k, ph, pw[, C])`` for a tensor volume Z×Y×X[×C].

    ``transpose`` (N,) bool: sample n's crop is transposed (its (ph, pw) plane; needs ph == pw), i.e.
    ``out[n, c, i, j] = volume[index[n, c], rows[n, j], cols[n, i]]``.

    On a GPU: whole rows picked with one ``index_select``, then the columns with one ``gather`` (no host
    round trip). On a CPU, where reading the indices costs nothing, crops whose rows and columns are
    runs of consecutive indices (ascending or descending: plain, flipped) are sliced per sample (a
    transpose is a view the copy reads through) — strided copies, an order of magnitude faster there than
    element-wise gathers. Equal results either way."""
    import torch

    if volume.device.type == "cpu":
        sliced = _crop_slices(volume, index, rows, cols, transpose)
        if sliced is not None:
            return sliced
    n, k = index.shape
    ph, pw = rows.shape[1], cols.shape[1]
    z, h, w = volume.shape[:3]
    rest = tuple(volume.shape[3:])
    flat_rows = (index[:, :, None] * h + rows[:, None, :]).reshape(-1)
    picked = volume.reshape(z * h, w, *rest).index_select(0, flat_rows).reshape(n, k * ph, w, *rest)
    cidx = cols.reshape(n, 1, pw, *([1] * len(rest))).expand(n, k * ph, pw, *rest)
    out = torch.gather(picked, 2, cidx).reshape(n, k, ph, pw, *rest)
    if transpose is not None:
        flag = transpose.to(out.device).reshape(n, *([1] * (out.ndim - 1)))
        out = torch.where(flag, out.transpose(2, 3), out)
    return out


def _runs(t: Any) -> tuple[list[int], list[int]] | None:
    """Per row of ``t`` (N, m): (lowest index, direction ±1) when the row is a run of consecutive indices."""
    import torch

    first, last = t[:, 0], t[:, -1]
    step = torch.where(last >= first, 1, -1)
    if not bool((t == first[:, None] + step[:, None] * torch.arange(t.shape[1])).all()):
        return None
    return torch.minimum(first, last).tolist(), step.tolist()


def crop_views(volume: Any, index: Any, rows: Any, cols: Any, transpose: Any = None) -> list[Any] | None:
    """The CPU way of :func:`crop_gather`, sample by sample: crop n as a tensor (k, ph, pw[, C]) equal to
    ``crop_gather(...)[n]`` — a view of ``volume`` where it can be (slices in steps of one stride, plain or
    transposed), else a small copy (flipped rows / columns / slice order, reflected borders); None when
    a sample's rows or columns are not runs of consecutive indices. Consumers that write each crop
    straight into their own buffer (the device-resident sampler's conversion) save a pass over the batch."""
    import torch

    ph, pw = rows.shape[1], cols.shape[1]
    ry, rx = _runs(rows), _runs(cols)
    if ry is None or rx is None:
        return None
    zs = index.tolist()
    swap = [False] * len(zs) if transpose is None else transpose.tolist()
    crops = []
    for b, z in enumerate(zs):
        y0, x0 = ry[0][b], rx[0][b]
        step = z[1] - z[0] if len(z) > 1 else 1
        flips = []
        if step != 0 and all(z[c + 1] - z[c] == step for c in range(len(z) - 1)):
            lo = min(z[0], z[-1])
            v = volume[lo : lo + abs(step) * (len(z) - 1) + 1 : abs(step), y0 : y0 + ph, x0 : x0 + pw]
            flips += [0] if step < 0 else []
        else:  # reflected or replicated border slices
            v = torch.stack([volume[zc, y0 : y0 + ph, x0 : x0 + pw] for zc in z])
        if swap[b]:
            v = v.transpose(1, 2)  # a view: the consumer's copy reads it transposed
        flips += [
            d for d, run in ((1, ry), (2, rx)) if run[1][b] < 0
        ]  # read in reverse (after a transpose: swapped axes)
        crops.append(v.flip([3 - d if (swap[b] and d) else d for d in flips]) if flips else v)
    return crops


def _crop_slices(volume: Any, index: Any, rows: Any, cols: Any, transpose: Any) -> Any:
    import torch

    crops = crop_views(volume, index, rows, cols, transpose)
    if crops is None:
        return None
    if not crops:
        return volume.new_empty((0, index.shape[1], rows.shape[1], cols.shape[1], *volume.shape[3:]))
    return torch.stack(crops)


def stack_slices(
    volume: Any,
    centres: Any,
    k: int = 3,
    dz: int = 1,
    border: str = "reflect",
    yx: tuple[slice, slice] | None = None,
    origins: Any = None,
    size: tuple[int, int] | None = None,
) -> Any:
    """Stack k context slices as channels.

    ``volume``: anything indexed like a Z×Y×X or Z×Y×X×C array (numpy, :class:`Volume`,
    h5py/zarr array, torch tensor on any device); only the needed slices (and the ``yx`` crop) are read.
    Returns ``(k·C, H, W)`` for a scalar centre, ``(N, k·C, H, W)`` for a sequence of N centres,
    in the volume's dtype (numpy, or torch on the volume's device when ``volume`` is a tensor).

    ``origins`` (N, 2) with ``size`` (ph, pw): each centre gets its own crop ``[y0, y0+ph) × [x0, x0+pw)``
    instead of the common ``yx`` (the batched patch gather of training). With a tensor volume, tensor
    ``centres`` / ``origins`` are used on the device as they are: the indices are computed and gathered
    there, with no host round trip (except the ``skip`` check). The numpy and torch paths give equal
    arrays for equal inputs.
    """
    if origins is not None and (size is None or yx is not None):
        raise InputError("give per-centre crop origins together with a crop size, and no common yx crop")
    depth = int(volume.shape[0])
    is_torch = type(volume).__module__.startswith("torch")
    if is_torch:
        return _stack_torch(volume, centres, depth, k, dz, border, yx, origins, size)
    scalar = np.ndim(centres) == 0
    zs = np.atleast_1d(np.asarray(centres, dtype=np.int64))
    if origins is not None:
        assert size is not None
        out = _stack_per_origin(volume, zs, k, dz, border, origins, size)
    else:
        out = _stack_common(volume, _index_rows(zs, depth, k, dz, border), yx)
    return out[0] if scalar else out


def _index_rows(zs: np.ndarray, depth: int, k: int, dz: int, border: str) -> np.ndarray:
    """(N, k) slice indices of the N centres ``zs``; a centre without a full context under ``skip`` is refused."""
    rows = []
    for z in zs:
        idx = stack_indices(int(z), depth, k, dz, border)
        if idx is None:
            raise InputError(
                f"centre z={int(z)} has no full {k}-slice context under border='skip': "
                f"take centres from valid_centres()"
            )
        rows.append(idx)
    return np.stack(rows) if rows else np.zeros((0, k), np.int64)


def _stack_common(volume: Any, index: np.ndarray, yx: tuple[slice, slice] | None) -> np.ndarray:
    """(N, k·C, H, W) stacks of the rows of ``index``, all cropped to ``yx``; each slice is read once."""
    ys, xs = yx if yx is not None else (slice(None), slice(None))
    unique, inverse = np.unique(index, return_inverse=True)
    inverse = inverse.reshape(index.shape)
    if len(unique):
        block = np.stack([np.asarray(volume[int(u), ys, xs]) for u in unique])
    else:
        block = np.zeros((0, *np.asarray(volume[0, ys, xs]).shape), dtype=volume.dtype)
    out = block[inverse]
    if out.ndim == 5:  # color: (N, k, H, W, C) → channels c-major per slice, (N, k·C, H, W)
        n, kk, hh, ww, cc = out.shape
        out = np.moveaxis(out, 4, 2).reshape(n, kk * cc, hh, ww)
    return out


def _stack_per_origin(
    volume: Any, zs: np.ndarray, k: int, dz: int, border: str, origins: Any, size: tuple[int, int]
) -> np.ndarray:
    """(N, k·C, ph, pw): centre ``zs[n]`` cropped at its own origin ``origins[n]`` (y0, x0) with ``size``."""
    ph, pw = (int(v) for v in size)
    o = np.asarray(origins, dtype=np.int64).reshape(-1, 2)
    if len(o) != len(zs):
        raise InputError(f"{len(o)} crop origins for {len(zs)} centres: give one origin per centre")
    crops = [
        stack_slices(volume, int(z), k, dz, border, yx=(slice(y, y + ph), slice(x, x + pw))) for z, (y, x) in zip(zs, o)
    ]
    if crops:
        return np.stack(crops)
    return np.zeros((0, k * (int(volume.shape[3]) if len(volume.shape) == 4 else 1), ph, pw), volume.dtype)


def _stack_torch(
    volume: Any,
    centres: Any,
    depth: int,
    k: int,
    dz: int,
    border: str,
    yx: tuple[slice, slice] | None,
    origins: Any,
    size: tuple[int, int] | None,
) -> Any:
    """The torch path of :func:`stack_slices` (indices computed and gathered on ``volume.device``)."""
    import torch

    dev = volume.device
    scalar = (not isinstance(centres, torch.Tensor) and np.ndim(centres) == 0) or (
        isinstance(centres, torch.Tensor) and centres.ndim == 0
    )
    zc = (
        centres.to(dev)
        if isinstance(centres, torch.Tensor)
        else torch.as_tensor(np.atleast_1d(np.asarray(centres, np.int64)), device=dev)
    )
    if not isinstance(centres, torch.Tensor):
        bad = [int(z) for z in zc.tolist() if not 0 <= z < depth]
        if bad:
            raise InputError(f"centre slice z={bad[0]} is outside the volume (depth {depth})")
    index = stack_index_tensor(zc, depth, k, dz, border)
    if origins is not None:
        assert size is not None
        yi, xi = _crop_grid(origins if isinstance(origins, torch.Tensor) else np.asarray(origins, np.int64), size)
        yi, xi = yi.to(dev), xi.to(dev)
        if len(yi) != len(index):
            raise InputError(f"{len(yi)} crop origins for {len(index)} centres: give one origin per centre")
        out = crop_gather(volume, index, yi, xi)
    else:
        ys, xs = yx if yx is not None else (slice(None), slice(None))
        out = volume[:, ys, xs][index]
    if out.ndim == 5:
        out = out.permute(0, 1, 4, 2, 3).flatten(1, 2)
    return out[0] if scalar else out


def context_range(z0: int, z1: int, depth: int, k: int = 3, dz: int = 1) -> tuple[int, int]:
    """``(a, b)``: the slices ``[a, b)`` that the stacks of centre slices ``z0 … z1−1`` read
    (``r·dz`` either side, ``k = 2r+1``), clipped to ``[0, depth)``."""
    r = (int(k) - 1) // 2 * int(dz)
    return max(0, int(z0) - r), min(int(depth), int(z1) + r)


def to_device_tensor(a: Any, device: Any, pinned: bool = False) -> Any:
    """A host array as a tensor on ``device`` with the same values, in its own dtype: native byte order (big-endian
    HDF5/Zarr data), uint16/uint32 widened to int32/int64 (torch lacks them as transfer dtypes), bool as uint8.
    ``pinned``: on CUDA, copy through pinned memory without blocking (block-sized transfers; not for whole volumes)."""
    import torch

    a = np.ascontiguousarray(a)
    if not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))
    if a.dtype in (np.uint16, np.uint32):
        a = a.astype(np.int32 if a.dtype == np.uint16 else np.int64)
    t = torch.from_numpy(a if a.dtype != bool else a.view(np.uint8))
    device = torch.device(device)
    if pinned and device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def to_unit_float(array: Any, out: Any = None) -> Any:
    """Intensities to float32 in [0, 1]: integer dtypes are divided by their dtype maximum
    (uint8 by 255); float input is taken as already in [0, 1] and only cast. Works on numpy
    arrays and torch tensors; ``out`` (torch only): a float32 tensor of the same shape to write into
    (in one pass: conversion and division fused)."""
    if type(array).__module__.startswith("torch"):
        import torch

        if array.dtype.is_floating_point:
            return array.float() if out is None else out.copy_(array)
        return torch.div(array, float(torch.iinfo(array.dtype).max), out=out)  # computed in float32: x.float() / max
    a = np.asarray(array)
    if np.issubdtype(a.dtype, np.integer):
        return a.astype(np.float32) / np.float32(np.iinfo(a.dtype).max)
    if a.dtype == bool:
        return a.astype(np.float32)
    return a.astype(np.float32, copy=False)
