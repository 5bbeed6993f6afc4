"""2.5D stacking: the one function that turns a volume into k-slice channel stacks.

Convention (used by training, prediction and diagnostics alike): for centre slice ``z``,
``k = 2r+1`` slices are taken at ``z - r·d … z + r·d`` (``d`` = z-step); channel ``c`` holds
the slice at offset ``(c - r)·d``. A multichannel volume (Z×Y×X×C, e.g. RGB) gives
``k·C`` channels in slice-major order: channel ``c·C + j`` is colour ``j`` of slice ``c``.

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

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from slicewise.errors import InputError

Border = Literal["reflect", "replicate", "skip"]
BORDERS: tuple[str, ...] = ("reflect", "replicate", "skip")


def check_stack_params(depth: int, k: int = 3, dz: int = 1, border: str = "reflect") -> int:
    """Validate k, d, border against a volume depth; return r = (k-1)/2."""
    if not isinstance(k, (int, np.integer)) or k < 1 or k % 2 == 0:
        raise InputError(f"in_slices k={k} must be a positive odd number (1, 3, 5, ...): the centre slice needs equal context on both sides")
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


def stack_slices(
    volume: Any,
    centres: int | Sequence[int] | np.ndarray,
    k: int = 3,
    dz: int = 1,
    border: str = "reflect",
    yx: tuple[slice, slice] | None = None,
) -> np.ndarray:
    """Stack k context slices as channels.

    ``volume``: anything indexed like a Z×Y×X or Z×Y×X×C array (numpy, :class:`Volume`,
    h5py/zarr array, torch tensor); only the needed slices (and the ``yx`` crop) are read.
    Returns ``(k·C, H, W)`` for a scalar centre, ``(N, k·C, H, W)`` for a sequence of N centres,
    in the volume's dtype (numpy, or torch when ``volume`` is a tensor).
    """
    depth = int(volume.shape[0])
    scalar = np.ndim(centres) == 0
    zs = np.atleast_1d(np.asarray(centres, dtype=np.int64))
    rows = []
    for z in zs:
        idx = stack_indices(int(z), depth, k, dz, border)
        if idx is None:
            raise InputError(f"centre z={int(z)} has no full {k}-slice context under border='skip': take centres from valid_centres()")
        rows.append(idx)
    index = np.stack(rows) if rows else np.zeros((0, k), np.int64)
    ys, xs = yx if yx is not None else (slice(None), slice(None))
    unique, inverse = np.unique(index, return_inverse=True)
    inverse = inverse.reshape(index.shape)
    is_torch = type(volume).__module__.startswith("torch")
    if is_torch:
        import torch

        block = volume[torch.as_tensor(unique, device=volume.device), ys, xs]
        out = block[torch.as_tensor(inverse, device=volume.device)]
        if out.ndim == 5:
            out = out.permute(0, 1, 4, 2, 3).flatten(1, 2)
    else:
        block = np.stack([np.asarray(volume[int(u), ys, xs]) for u in unique]) if len(unique) else None
        if block is None:
            shape = np.asarray(volume[0, ys, xs]).shape
            block = np.zeros((0, *shape), dtype=volume.dtype)
        out = block[inverse]
        if out.ndim == 5:
            out = np.moveaxis(out, 4, 2).reshape(out.shape[0], -1, out.shape[2], out.shape[3])
    return out[0] if scalar else out


def context_range(z0: int, z1: int, depth: int, k: int = 3, dz: int = 1) -> tuple[int, int]:
    """``(a, b)``: the slices ``[a, b)`` that the stacks of centre slices ``z0 … z1−1`` read
    (``r·dz`` either side, ``k = 2r+1``), clipped to ``[0, depth)``."""
    r = (int(k) - 1) // 2 * int(dz)
    return max(0, int(z0) - r), min(int(depth), int(z1) + r)


def to_unit_float(array: Any) -> Any:
    """Intensities to float32 in [0, 1]: integer dtypes are divided by their dtype maximum
    (uint8 by 255); float input is taken as already in [0, 1] and only cast. Works on numpy
    arrays and torch tensors."""
    if type(array).__module__.startswith("torch"):
        import torch

        if array.dtype.is_floating_point:
            return array.float()
        return array.float() / float(torch.iinfo(array.dtype).max)
    a = np.asarray(array)
    if np.issubdtype(a.dtype, np.integer):
        return a.astype(np.float32) / np.float32(np.iinfo(a.dtype).max)
    if a.dtype == bool:
        return a.astype(np.float32)
    return a.astype(np.float32, copy=False)
