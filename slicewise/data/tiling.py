"""Tiling: the one sliding-window layout used by prediction and by the audits.

Conventions (per in-plane axis, sizes in pixels):

- ``tile_starts(size, tile, overlap)``: tile origins ``0, step, 2·step, …`` with
  ``step = max(1, floor(tile·(1 − overlap)))`` (MONAI's rule); the last tile is moved flush with
  the end so the whole extent is covered. An axis shorter than the tile gets one tile at 0.
- Planes smaller than a tile are padded at the bottom/right up to the tile size by reflection
  (``numpy.pad(mode="reflect")``, repeated when the pad exceeds the plane; :func:`reflect_index`
  gives the indices, applied on the device), predicted, and cropped back to ``[:size]``.
  :func:`effective_tile` first shrinks a tile to the smallest multiple of the model's size
  divisor that covers a short axis, so little padding is wasted.
- ``gaussian_weight(tile)``: MONAI-style importance map, a separable Gaussian with
  ``sigma = sigma_scale · tile`` per axis, peak 1, clamped below at ``min_weight`` so every pixel
  has a strictly positive weight. Blending is ``Σ w·p / Σ w`` over the tiles covering a pixel.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from slicewise.errors import InputError


def _check_tile(tile: int, overlap: float) -> None:
    if int(tile) < 1:
        raise InputError(f"tile size {tile} must be a positive number of pixels (e.g. 256)")
    if not 0.0 <= float(overlap) < 1.0:
        raise InputError(f"tile overlap {overlap} must be in [0, 1) (a fraction of the tile, e.g. 0.25)")


def tile_starts(size: int, tile: int, overlap: float = 0.25) -> list[int]:
    """Tile origins along one axis of length ``size``, covering it; last tile flush with the end."""
    _check_tile(tile, overlap)
    size, tile = int(size), int(tile)
    if size <= tile:
        return [0]
    step = max(1, int(tile * (1.0 - float(overlap))))
    starts = list(range(0, size - tile + 1, step))
    if starts[-1] + tile < size:
        starts.append(size - tile)
    return starts


def effective_tile(size: int, tile: int, divisor: int = 1) -> int:
    """Tile length used on an axis of ``size`` pixels: ``tile``, or for a shorter axis the smallest
    multiple of ``divisor`` that covers it (never more than ``tile``)."""
    divisor = max(1, int(divisor))
    covering = -(-int(size) // divisor) * divisor
    return int(min(int(tile), covering))


@lru_cache(maxsize=32)
def _gaussian_weight(tile: tuple[int, ...], sigma_scale: float, min_weight: float) -> np.ndarray:
    axes = []
    for t in tile:
        x = np.arange(t, dtype=np.float64) - (t - 1) / 2.0
        sigma = max(sigma_scale * t, 1e-6)
        axes.append(np.exp(-0.5 * (x / sigma) ** 2))
    w = axes[0]
    for a in axes[1:]:
        w = np.multiply.outer(w, a)
    w = w / w.max()
    w = np.maximum(w, min_weight).astype(np.float32)
    w.setflags(write=False)
    return w


def gaussian_weight(tile: int | Sequence[int], sigma_scale: float = 0.125, min_weight: float = 1e-3) -> np.ndarray:
    """Gaussian importance map of shape ``tile`` (float32, peak 1, every value >= ``min_weight`` > 0)."""
    t = (int(tile), int(tile)) if np.ndim(tile) == 0 else tuple(int(v) for v in tile)  # type: ignore[arg-type]
    if min_weight <= 0:
        raise InputError(f"min_weight {min_weight} must be > 0 so every pixel gets a positive weight")
    return _gaussian_weight(t, float(sigma_scale), float(min_weight))


def reflect_index(n: int, m: int, device: Any = None) -> Any:
    """Indices (torch, length ``m`` >= ``n``) that extend an axis of ``n`` pixels at its end by reflection
    without repeating the edge (numpy ``pad(mode="reflect")``, repeated when the pad exceeds the axis;
    an axis of one pixel is repeated). Used on the device to pad planes smaller than a tile."""
    import torch

    i = torch.arange(int(m), device=device)
    if n == 1:
        return torch.zeros_like(i)
    period = 2 * (int(n) - 1)
    j = i % period
    return torch.where(j < n, j, period - j)


def iter_tiles(shape: tuple[int, int], tile: tuple[int, int], overlap: float = 0.25) -> Iterator[tuple[slice, slice]]:
    """Windows ``(ys, xs)`` of a plane of ``shape`` (padded to at least ``tile``), row-major order."""
    h, w = max(shape[0], tile[0]), max(shape[1], tile[1])
    for y in tile_starts(h, tile[0], overlap):
        for x in tile_starts(w, tile[1], overlap):
            yield slice(y, y + tile[0]), slice(x, x + tile[1])


def weight_sum(
    shape: tuple[int, int], tile: tuple[int, int], overlap: float = 0.25, sigma_scale: float = 0.125
) -> np.ndarray:
    """Sum of the Gaussian weights of all tiles over a (padded) plane: the blending denominator."""
    h, w = max(shape[0], tile[0]), max(shape[1], tile[1])
    out = np.zeros((h, w), np.float32)
    g = gaussian_weight(tile, sigma_scale)
    for ys, xs in iter_tiles(shape, tile, overlap):
        out[ys, xs] += g
    return out
