"""THE connected-components function: block-wise (and per slice), equal to ``scipy.ndimage.label`` of the volume.

:func:`label` is what every caller uses in memory (``metrics`` membrane → neuron ids, ``training``'s
regions as instances); :func:`label_blocks` / :func:`relabel_blocks` are the block-wise passes that
``slicewise.segment`` runs over on-disk arrays. Blocks are the boxes of :func:`slicewise.data.grid.block_grid`.

Algorithm (the one daisy, dask-image and PyTorch Connectomics' chunked labelling use):

1. Each block's core (no halo) is labelled alone with ``ndi.label`` and the same ``structure``;
   its labels are offset to be unique across blocks ("provisional ids") and written to a
   provisional int64 store. Per provisional id we keep its size and its first voxel (the flat
   index in C order of the whole volume: C order is translation invariant, so the first voxel of
   a label within the block is its first voxel in the volume).
2. For every face a block shares with its lower neighbour along an axis, a two-plane slab is read
   back (one plane on each side, widened by one voxel in the other axes so edge and corner
   neighbours of a diagonal ``structure`` are seen) and every pair of provisional ids adjacent
   under ``structure`` across the face is recorded.
3. The pair graph's connected components (``scipy.sparse.csgraph``) merge provisional ids into
   objects; an object's size is the sum and its first voxel the minimum over its parts.
   Objects smaller than ``min_size`` are dropped; the others get ids ``1…N`` in the order of
   their first voxel in C order, which is the order ``ndi.label`` numbers them, so the result
   equals ``ndi.label`` of the whole mask id for id (``min_size=0``), and
   ``skimage.segmentation.relabel_sequential`` of it after a size filter.
4. A last pass maps the provisional ids of each block through that table into the output.

Memory: one block (its mask, its labels), a two-plane face slab, and tables with one entry per
provisional id or per adjacent pair; never the volume.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage as ndi
from scipy import sparse
from scipy.sparse import csgraph

from slicewise.data.grid import Box, block_grid
from slicewise.errors import InputError
from slicewise.utils import progress

#: ``mask_fn(box)`` → the boolean mask of a box of the volume.
MaskFn = Callable[[Box], np.ndarray]

#: largest id an int32 label map can hold.
INT32_MAX = int(np.iinfo(np.int32).max)


def structure_for(connectivity: int = 1, per_slice: bool = False) -> np.ndarray:
    """The 3×3×3 ``ndi.label`` structure: ``connectivity`` 1 (faces), 2 (+edges) or 3 (+corners).

    ``per_slice`` keeps only the in-plane neighbours (z layers empty), so every z-slice is
    labelled alone in 2-D with ids unique over the volume, slice by slice in C order.
    """
    if connectivity not in (1, 2, 3):
        raise InputError(f"connectivity {connectivity} must be 1 (faces), 2 (edges) or 3 (corners)")
    if per_slice:
        s = np.zeros((3, 3, 3), bool)
        s[1] = ndi.generate_binary_structure(2, min(connectivity, 2))
        return s
    return ndi.generate_binary_structure(3, connectivity)


@dataclass(frozen=True)
class Components:
    """The objects found: ``n`` ids ``1…n``; per id (index id − 1) its ``sizes`` and ``first`` voxel.

    ``first`` is the flat index, in C order over the labelled array of ``shape``, of the id's first voxel.
    """

    n: int
    sizes: np.ndarray
    first: np.ndarray
    shape: tuple[int, int, int]

    def first_z(self) -> np.ndarray:
        """z-slice (relative to the labelled array) of each id's first voxel."""
        return self.first // int(self.shape[1] * self.shape[2])


def label_blocks(
    mask_fn: MaskFn,
    shape: Sequence[int],
    block: Sequence[int],
    provisional: Any,
    *,
    structure: np.ndarray | None = None,
    desc: str = "labelling",
    blocks_done: Any = None,
) -> tuple[np.ndarray, Components]:
    """Steps 1–3 of the module docstring: label blocks of ``mask_fn(region)`` into ``provisional``.

    ``provisional`` is an int64 array-like of ``shape`` (numpy or an on-disk store) that receives the
    provisional ids (step 1). Returns ``(table, components)``: ``table[provisional id]`` = object id
    (0 for background), and the objects' sizes / first voxels. Apply ``table`` with
    :func:`relabel_blocks` (optionally after a size filter, :func:`filter_table`).

    ``blocks_done``: a :class:`~slicewise.segment.resume.BlockLog` of an on-disk ``provisional``; a block it
    records (from an interrupted run) is not labelled again, and each newly labelled block is recorded.
    """
    shape = tuple(int(s) for s in shape)
    structure = structure_for(1) if structure is None else np.asarray(structure, bool)
    regions = block_grid(shape, block)
    sizes_parts: list[np.ndarray] = []
    first_parts: list[np.ndarray] = []
    total = 0
    for i, region in enumerate(progress(regions, desc=desc, total=len(regions))):
        done = blocks_done.load(i) if blocks_done is not None else None
        if done is None:
            done = _label_block(mask_fn, region, shape, structure, provisional, total)
            if blocks_done is not None:
                blocks_done.save(i, done)
        if len(done["sizes"]):
            sizes_parts.append(done["sizes"])
            first_parts.append(done["first"])
        total += len(done["sizes"])
    sizes = np.concatenate(sizes_parts) if sizes_parts else np.zeros(0, np.int64)
    first = np.concatenate(first_parts) if first_parts else np.zeros(0, np.int64)
    pairs = _face_pairs(provisional, shape, regions, structure)
    graph = sparse.coo_array((np.ones(len(pairs), np.int8), (pairs[:, 0] - 1, pairs[:, 1] - 1)), shape=(total, total))
    n_comp, comp = csgraph.connected_components(graph, directed=False) if total else (0, np.zeros(0, np.int64))
    obj_first = np.full(n_comp, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(obj_first, comp, first)
    obj_sizes = np.bincount(comp, weights=sizes, minlength=n_comp).astype(np.int64)
    order = np.argsort(obj_first, kind="stable")
    rank = np.empty(n_comp, np.int64)
    rank[order] = np.arange(1, n_comp + 1)
    table = np.concatenate([[0], rank[comp]]).astype(np.int64)
    return table, Components(int(n_comp), obj_sizes[order], obj_first[order], shape)  # type: ignore[arg-type]


def _label_block(
    mask_fn: MaskFn, region: Box, shape: tuple[int, ...], structure: np.ndarray, provisional: Any, offset: int
) -> dict[str, np.ndarray]:
    """Label one block core into ``provisional`` with ids after ``offset``; its objects' ``sizes`` and ``first``
    voxels."""
    mask = np.asarray(mask_fn(region), bool)
    lab, n = ndi.label(mask, structure)
    lab = lab.astype(np.int64, copy=False)
    sizes, first = np.zeros(0, np.int64), np.zeros(0, np.int64)
    if n:
        flat = lab.ravel()
        ids, idx = np.unique(flat, return_index=True)
        keep = ids > 0
        local = np.unravel_index(idx[keep], lab.shape)
        first = np.asarray(np.ravel_multi_index(tuple(c + r.start for c, r in zip(local, region)), shape), np.int64)
        sizes = np.bincount(flat, minlength=n + 1)[1:].astype(np.int64)
        lab[lab > 0] += offset
    provisional[region] = lab
    return {"sizes": sizes, "first": first}


def _face_pairs(provisional: Any, shape: tuple[int, ...], regions: list[Box], structure: np.ndarray) -> np.ndarray:
    """Distinct (a, b) provisional-id pairs adjacent under ``structure`` across block faces, shape (P, 2)."""
    offsets = np.argwhere(structure) - 1
    found: list[np.ndarray] = []
    for region in regions:
        for d in range(3):
            c = region[d].start
            if c == 0:
                continue
            step = offsets[offsets[:, d] == 1]
            if not len(step):
                continue
            slab_region = tuple(
                slice(c - 1, c + 1) if a == d else slice(max(r.start - 1, 0), min(r.stop + 1, shape[a]))
                for a, r in enumerate(region)
            )
            slab = np.asarray(provisional[slab_region])
            lo, hi = np.take(slab, 0, axis=d), np.take(slab, 1, axis=d)
            others = [a for a in range(3) if a != d]
            for off in step:
                o = [int(off[a]) for a in others]
                src = tuple(slice(max(0, -k), lo.shape[i] - max(0, k)) for i, k in enumerate(o))
                dst = tuple(slice(max(0, k), hi.shape[i] - max(0, -k)) for i, k in enumerate(o))
                a, b = lo[src].ravel(), hi[dst].ravel()
                both = (a > 0) & (b > 0)
                if both.any():
                    found.append(np.unique(np.stack([a[both], b[both]], 1), axis=0))
    if not found:
        return np.zeros((0, 2), np.int64)
    return np.unique(np.concatenate(found), axis=0).astype(np.int64)


def filter_table(table: np.ndarray, comps: Components, min_size: int) -> tuple[np.ndarray, Components]:
    """Drop objects of fewer than ``min_size`` voxels from ``table`` and renumber the rest 1…N (order kept)."""
    if min_size <= 1 or comps.n == 0:
        return table, comps
    keep = comps.sizes >= int(min_size)
    new = np.zeros(comps.n + 1, np.int64)
    new[1:][keep] = np.arange(1, int(keep.sum()) + 1)
    return new[table], Components(int(keep.sum()), comps.sizes[keep], comps.first[keep], comps.shape)


def relabel_blocks(
    source: Any,
    table: np.ndarray,
    out: Any,
    shape: Sequence[int],
    block: Sequence[int],
    dtype: Any = np.int32,
    desc: str = "relabelling",
) -> None:
    """Step 4: ``out[region] = table[source[region]]`` block by block (ids checked to fit ``dtype``)."""
    if table.size and int(table.max()) > np.iinfo(np.dtype(dtype)).max:
        raise InputError(
            f"{int(table.max())} objects do not fit {np.dtype(dtype).name} label ids: "
            f"raise the thresholds or --min-size"
        )
    regions = block_grid(shape, block)
    for region in progress(regions, desc=desc, total=len(regions)):
        out[region] = table[np.asarray(source[region])].astype(dtype, copy=False)


def label(
    mask: Any, block: Sequence[int] | None = None, *, connectivity: int = 1, per_slice: bool = False, min_size: int = 0
) -> np.ndarray:
    """Block-wise :func:`scipy.ndimage.label` of a (Z, Y, X) mask, in memory (int32), for tests and small volumes.

    Equal id for id to ``ndi.label(mask, structure_for(connectivity, per_slice))[0]`` when ``min_size`` ≤ 1.
    """
    mask = np.asarray(mask, bool)
    block = tuple(mask.shape) if block is None else tuple(block)
    prov = np.zeros(mask.shape, np.int64)
    table, comps = label_blocks(
        lambda r: mask[r], mask.shape, block, prov, structure=structure_for(connectivity, per_slice)
    )
    table, comps = filter_table(table, comps, min_size)
    out = np.zeros(mask.shape, np.int32)
    relabel_blocks(prov, table, out, mask.shape, block)
    return out
