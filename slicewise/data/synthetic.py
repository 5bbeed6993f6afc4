"""A seeded synthetic serial-section EM phantom: cells, membranes, mitochondria.

The phantom is the embedded default dataset of the demo and the tests: a learnable 2.5D task
with z-continuity, generated in about a second for 32×256×256 on one core.

Construction (all lengths in in-plane pixels; one slice is ``anisotropy`` pixels thick):

- **cells**: a 3-D Voronoi tessellation of ``n_cells`` random seed points in physical space
  (z scaled by ``anisotropy``), with voxel coordinates warped by a smooth random displacement
  so that membranes are gently curved; each cell therefore spans many slices.
- **membranes**: the in-plane band of ``membrane_width`` pixels where a cell meets another, plus
  every voxel whose neighbour in the next slice belongs to another cell. Membrane voxels carry
  cell id 0, so no two face-adjacent (6-neighbour) voxels carry different nonzero cell ids.
- **mitochondria**: ellipsoids (in-plane semi-axes 3–9 px and 3–6 px, ``1.5–3.5`` slices deep, random
  in-plane orientation) placed inside single cells, at least 2 voxels away from any membrane
  voxel; they keep a one-voxel gap to each other; a placement that would lose more than 30% of
  the ellipsoid to these constraints is retried elsewhere.
- **raw**: bright granular cytoplasm (smoothed noise), dark membranes, dark mitochondria, a small
  per-slice brightness jitter, in-plane Gaussian blur ``blur`` (px) and additive Gaussian noise
  ``noise`` (fraction of the 0–255 range), clipped and rounded to uint8.

Same seed and arguments → identical arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

from slicewise.errors import InputError

MEMBRANE, MITOCHONDRION = 1, 2  # semantic classes; 0 is cytoplasm/background

# Mean grey values (0-255) before texture, blur and noise.
_CYTOPLASM_GREY, _MEMBRANE_GREY, _MITO_GREY = 175.0, 55.0, 95.0


@dataclass(frozen=True)
class Phantom:
    """A synthetic EM volume and its ground truth, all Z×Y×X.

    ``raw`` uint8 intensities; ``semantic`` uint8 classes (0 cytoplasm/background, 1 membrane,
    2 mitochondrion); ``cells`` int32 cell ids (1…n, 0 on membranes; mitochondria carry their
    cell's id); ``mitochondria`` int32 instance ids (1…m, 0 outside); ``boundary`` bool membrane
    mask (``semantic == 1``); ``voxel_size`` (z, y, x) in in-plane pixel units.
    """

    raw: np.ndarray
    semantic: np.ndarray
    cells: np.ndarray
    mitochondria: np.ndarray
    boundary: np.ndarray
    voxel_size: tuple[float, float, float]


def _check_shape(shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(shape) != 3 or any(int(s) < 1 for s in shape):
        raise InputError(f"phantom shape {tuple(shape)} must be three positive sizes (Z, Y, X)")
    z, y, x = (int(s) for s in shape)
    if y < 16 or x < 16:
        raise InputError(f"phantom shape {tuple(shape)} is too small in-plane: use Y, X >= 16")
    return z, y, x


def _smooth_displacement(
    coords: np.ndarray, rng: np.random.Generator, amplitude: float, wavelength: float
) -> np.ndarray:
    """A smooth random displacement (N, 3) of physical coordinates: a sum of 3 random plane waves per axis."""
    out = np.zeros_like(coords)
    for axis in range(3):
        for _ in range(3):
            direction = rng.normal(size=3)
            direction /= np.linalg.norm(direction)
            freq = 2 * np.pi / (wavelength * rng.uniform(0.7, 1.4))
            phase = rng.uniform(0, 2 * np.pi)
            out[:, axis] += (amplitude / 3) * np.sin(coords @ (direction * freq).astype(coords.dtype) + phase)
    return out


def _voronoi_cells(
    shape: tuple[int, int, int],
    n_cells: int,
    anisotropy: float,
    rng: np.random.Generator,
    wobble: float,
    cell_size: float,
) -> np.ndarray:
    """Voronoi cell ids 1…n (int32, Z×Y×X) on warped physical coordinates."""
    z, y, x = shape
    extent = np.array([z * anisotropy, y, x], dtype=np.float64)
    seeds = rng.uniform(0.0, 1.0, size=(n_cells, 3)) * extent
    grid = np.empty((z, y, x, 3), dtype=np.float32)
    grid[..., 0] = (np.arange(z, dtype=np.float32) * anisotropy)[:, None, None]
    grid[..., 1] = np.arange(y, dtype=np.float32)[None, :, None]
    grid[..., 2] = np.arange(x, dtype=np.float32)[None, None, :]
    coords = grid.reshape(-1, 3)
    if wobble > 0:
        coords = coords + _smooth_displacement(coords, rng, wobble, cell_size)
    _, nearest = cKDTree(seeds).query(coords, k=1)
    return (nearest.astype(np.int32) + 1).reshape(shape)


def _membranes(cells: np.ndarray, width: int) -> np.ndarray:
    """Membrane mask: in-plane band where a window of ``width + 1`` px sees two cell ids, plus
    the voxel below every z-face between different cells (so 6-neighbours are always separated)."""
    size = (1, width + 1, width + 1)
    band = ndi.maximum_filter(cells, size=size) != ndi.minimum_filter(cells, size=size)
    band[:-1] |= cells[:-1] != cells[1:]
    band[:, :-1] |= cells[:, :-1] != cells[:, 1:]
    band[:, :, :-1] |= cells[:, :, :-1] != cells[:, :, 1:]
    return band


def _place_mitochondria(
    cells: np.ndarray, membrane: np.ndarray, density: float, anisotropy: float, rng: np.random.Generator
) -> np.ndarray:
    """Non-overlapping ellipsoids inside single cells, >= 2 voxels from any membrane voxel.
    ``density``: target fraction of cell voxels covered. Returns instance ids (int32)."""
    mito = np.zeros(cells.shape, dtype=np.int32)
    if density <= 0:
        return mito
    allowed = ndi.distance_transform_edt(~membrane) >= 2.0
    candidates = np.flatnonzero(ndi.distance_transform_edt(~membrane, sampling=(anisotropy, 1, 1)) >= 4.0)
    if candidates.size == 0:
        return mito
    target = density * np.count_nonzero(cells)
    covered, next_id = 0, 1
    depth, height, width = cells.shape
    for _ in range(4 * int(target // 80 + 10)):
        if covered >= target:
            break
        cz, cy, cx = np.unravel_index(candidates[rng.integers(candidates.size)], cells.shape)
        a, b = rng.uniform(3.0, 9.0), rng.uniform(3.0, 6.0)
        c = rng.uniform(1.5, 3.5)
        theta = rng.uniform(0, np.pi)
        ra, rc = int(np.ceil(max(a, b))), int(np.ceil(c))
        z0, z1 = max(cz - rc, 0), min(cz + rc + 1, depth)
        y0, y1 = max(cy - ra, 0), min(cy + ra + 1, height)
        x0, x1 = max(cx - ra, 0), min(cx + ra + 1, width)
        zz, yy, xx = np.ogrid[z0 - cz : z1 - cz, y0 - cy : y1 - cy, x0 - cx : x1 - cx]
        u = yy * np.cos(theta) + xx * np.sin(theta)
        v = -yy * np.sin(theta) + xx * np.cos(theta)
        inside = (u / a) ** 2 + (v / b) ** 2 + (zz / c) ** 2 <= 1.0
        full = int(np.count_nonzero(inside))
        box = (slice(z0, z1), slice(y0, y1), slice(x0, x1))
        cell_id = cells[cz, cy, cx]
        inside &= (cells[box] == cell_id) & allowed[box] & (mito[box] == 0)
        # keep a one-voxel gap to other mitochondria so instances stay apart
        inside &= ~ndi.binary_dilation(mito[box] > 0)
        n = int(np.count_nonzero(inside))
        if n < max(12, 0.7 * full):  # cut by the cell or a neighbour: try elsewhere
            continue
        mito[box][inside] = next_id
        next_id += 1
        covered += n
    return mito


def make_phantom(
    shape: tuple[int, int, int] = (32, 256, 256),
    seed: int = 0,
    n_cells: int | None = None,
    mito_density: float = 0.06,
    noise: float = 0.08,
    blur: float = 1.0,
    anisotropy: float = 4.0,
    cell_size: float = 48.0,
    membrane_width: int = 3,
    wobble: float = 4.0,
) -> Phantom:
    """Generate a seeded synthetic EM phantom (see the module docstring).

    ``shape`` (Z, Y, X) voxels; ``n_cells`` Voronoi seeds (default: physical volume / ``cell_size``³,
    at least 4); ``mito_density`` fraction of cell voxels in mitochondria (0 for none);
    ``noise`` std of additive Gaussian noise as a fraction of 255; ``blur`` in-plane Gaussian sigma
    (px); ``anisotropy`` slice thickness / pixel size; ``cell_size`` typical cell diameter (px);
    ``membrane_width`` in-plane membrane thickness (px); ``wobble`` membrane curvature amplitude (px).
    """
    z, y, x = _check_shape(shape)
    if anisotropy <= 0 or cell_size <= 0:
        raise InputError(f"anisotropy={anisotropy} and cell_size={cell_size} must be positive")
    if not 0 <= mito_density < 0.5 or noise < 0 or blur < 0:
        raise InputError(f"mito_density={mito_density} must be in [0, 0.5), noise={noise} and blur={blur} >= 0")
    if membrane_width < 1:
        raise InputError(f"membrane_width={membrane_width} must be >= 1 pixel")
    rng = np.random.default_rng(seed)
    if n_cells is None:
        n_cells = max(4, int(round(z * anisotropy * y * x / cell_size**3)))
    if n_cells < 1:
        raise InputError(f"n_cells={n_cells} must be >= 1")

    cells = _voronoi_cells((z, y, x), int(n_cells), float(anisotropy), rng, float(wobble), float(cell_size))
    membrane = _membranes(cells, int(membrane_width))
    cells[membrane] = 0
    mito = _place_mitochondria(cells, membrane, float(mito_density), float(anisotropy), rng)

    semantic = np.zeros((z, y, x), dtype=np.uint8)
    semantic[membrane] = MEMBRANE
    semantic[mito > 0] = MITOCHONDRION

    grey = np.array([_CYTOPLASM_GREY, _MEMBRANE_GREY, _MITO_GREY], dtype=np.float32)[semantic]
    texture = ndi.gaussian_filter(rng.standard_normal((z, y, x), dtype=np.float32), sigma=(0.0, 1.5, 1.5))
    grey += texture * np.float32(60.0)
    grey += rng.normal(0.0, 6.0, size=(z, 1, 1)).astype(np.float32)
    if blur > 0:
        grey = ndi.gaussian_filter(grey, sigma=(0.0, blur, blur))
    if noise > 0:
        grey += rng.standard_normal((z, y, x), dtype=np.float32) * np.float32(noise * 255.0)
    raw = np.clip(np.rint(grey), 0, 255).astype(np.uint8)
    return Phantom(
        raw=raw,
        semantic=semantic,
        cells=cells,
        mitochondria=mito,
        boundary=membrane,
        voxel_size=(float(anisotropy), 1.0, 1.0),
    )
