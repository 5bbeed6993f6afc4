"""The block driver of ``segment``: its passes over the blocks of the ROI, in memory or resumable on disk.

Memory is bounded by a block plus tables with one entry per object or label pair, never the volume.

- ``cc`` is exact for any block shape: blocks are labelled alone, joined by union-find over the
  label pairs that touch across block faces, and relabelled in one global pass
  (:mod:`slicewise.data.components`); the result equals ``scipy.ndimage.label`` of the whole mask id for id.
- ``watershed``: seeds are labelled block-wise exactly like ``cc`` (global seed ids), then each
  block floods its core reading ``halo`` voxels of context on every side (surface, mask, seeds;
  :mod:`slicewise.segment.watershed`), then unseeded components are labelled block-wise. Where it can
  differ from flooding the whole volume: a voxel whose flooding path from its seed leaves the block
  core ± halo, or whose competing seed lies outside it, can get another seed's id or none (then it joins
  an unseeded component); with ``use="distance"`` and no distance channel the distance transform and its
  local maxima are computed within the core ± halo, so they differ for objects cut by that region.
  It is identical to whole-volume watershed when every foreground component (of ``fg``) that
  reaches a block extends less than the halo beyond that block's core (e.g. the halo exceeds the
  largest object's extent; add ``min_distance`` for local-maximum seeds), and for a single block.
  ``tests/segment/test_blockwise.py`` tests both and measures agreement otherwise.

Ids are numbered ``1…N`` by a fixed rule: in ``cc`` mode by each object's first voxel in C order
(z, then y, then x), which is how ``scipy.ndimage.label`` numbers them; in watershed mode the
seeded objects first, in the order of their seed's first voxel, then the unseeded components in
the order of their first voxel; with ``per_slice`` slice by slice (seeded then unseeded within
each slice). A size filter keeps the order and closes the gaps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np

from slicewise.data.components import Components, filter_table, label_blocks, relabel_blocks, structure_for
from slicewise.data.grid import Box, block_grid
from slicewise.errors import InputError
from slicewise.segment.inputs import RegionReader, SegmentPlan
from slicewise.segment.resume import BlockLog, JobState
from slicewise.segment.watershed import flood, seed_mask
from slicewise.utils import progress


class Passes:
    """Where :func:`run_passes` keeps its passes: in memory (``state`` None: numpy scratch, nothing kept) or in a
    resumable :class:`~slicewise.segment.resume.JobState` (Zarr scratch, finished passes and blocks kept)."""

    def __init__(self, shape: tuple[int, ...], block: Sequence[int], state: JobState | None) -> None:
        self.shape, self.state = shape, state
        self.chunks = tuple(min(int(b), int(n)) for b, n in zip(block, shape))

    def array(self, name: str) -> Any:
        return np.zeros(self.shape, np.int64) if self.state is None else self.state.array(name, self.shape, self.chunks)

    def blocks(self, name: str) -> BlockLog | None:
        return None if self.state is None else self.state.blocks(name)

    def step(self, name: str, compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        return compute() if self.state is None else self.state.step(name, compute)

    def components(
        self,
        name: str,
        mask: Callable[[Box], np.ndarray],
        prov: Any,
        structure: np.ndarray,
        block: Sequence[int],
        desc: str,
    ) -> tuple[np.ndarray, Components]:
        """:func:`~slicewise.data.components.label_blocks` of ``mask`` into ``prov`` as pass ``name`` (resumable
        by blocks)."""

        def compute() -> dict[str, np.ndarray]:
            table, comps = label_blocks(
                mask, self.shape, block, prov, structure=structure, desc=desc, blocks_done=self.blocks(name)
            )
            return {"table": table, "sizes": comps.sizes, "first": comps.first}

        res = self.step(name, compute)
        n = len(res["sizes"])
        return res["table"], Components(n, res["sizes"], res["first"], self.shape)  # type: ignore[arg-type]


def run_passes(reader: RegionReader, out: Any, state: JobState | None = None) -> int:
    """Segment the ROI block by block into ``out`` (int32, ROI-shaped); returns the number of objects.

    Passes (each resumable with a ``state``; the last one, into ``out``, is always redone): cc — label the
    mask; watershed — label the seeds, write them as global markers, flood each block with its halo,
    label the unseeded foreground; then the final ids."""
    pl, shape = reader.plan, reader.shape
    passes = Passes(shape, pl.block, state)
    structure = structure_for(pl.connectivity if pl.mode == "cc" else 1, pl.per_slice)
    prov = passes.array("provisional")
    if pl.mode == "cc":
        table, comps = passes.components("components", reader.mask, prov, structure, pl.block, "labelling blocks")
        table, comps = filter_table(table, comps, pl.min_size)
        relabel_blocks(prov, table, out, shape, pl.block, desc="writing labels")
        return comps.n
    # seeds → global seed ids (exact, block-wise)
    table, seeds = passes.components("seeds", partial(seed_mask, reader), prov, structure, pl.block, "labelling seeds")
    markers = passes.array("markers")
    passes.step(
        "markers",
        lambda: (relabel_blocks(prov, table, markers, shape, pl.block, dtype=np.int64, desc="writing seeds"), {})[1],
    )
    ws = passes.array("watershed")
    seed_sizes = passes.step("watershed", lambda: _flood_blocks(reader, passes, markers, ws, seeds.n))["seed_sizes"]

    # unseeded foreground components, block-wise (the seeds' provisional ids are no longer needed)
    def orphan_mask(box: Box) -> np.ndarray:
        return reader.mask(box) & (np.asarray(ws[box]) == 0)

    o_table, orphans = passes.components("unseeded", orphan_mask, prov, structure, pl.block, "labelling unseeded")
    final = final_table(seeds, seed_sizes[1:], orphans, pl)
    s = seeds.n
    boxes = block_grid(shape, pl.block)
    for box in progress(boxes, desc="writing labels", total=len(boxes)):
        raw = np.asarray(ws[box])
        o = o_table[np.asarray(prov[box])]
        raw = np.where(raw > 0, raw, np.where(o > 0, o + s, 0))
        out[box] = final[raw].astype(np.int32)
    return int(final.max()) if final.size else 0


def _flood_blocks(reader: RegionReader, passes: Passes, markers: Any, ws: Any, n_seeds: int) -> dict[str, np.ndarray]:
    """Flood each block with its halo into ``ws`` (resumable by blocks); the voxel count of each seed id."""
    done_blocks = passes.blocks("watershed")
    seed_sizes = np.zeros(n_seeds + 1, np.int64)
    boxes = block_grid(reader.shape, reader.plan.block)
    for i, box in enumerate(progress(boxes, desc="watershed", total=len(boxes))):
        done = done_blocks.load(i) if done_blocks is not None else None
        if done is None:
            lab = flood(reader, box, markers)
            ws[box] = lab
            counts = np.bincount(lab.ravel(), minlength=n_seeds + 1)
            ids = np.flatnonzero(counts)
            done = {"ids": ids, "counts": counts[ids]}
            if done_blocks is not None:
                done_blocks.save(i, done)
        seed_sizes[done["ids"]] += done["counts"]
    return {"seed_sizes": seed_sizes}


def final_table(seeds: Components, seed_sizes: np.ndarray, orphans: Components, pl: SegmentPlan) -> np.ndarray:
    """Map raw ids (seeds 1…S, unseeded S+1…S+O) to final ids 1…N by the module's numbering rule."""
    sizes = np.concatenate([seed_sizes, orphans.sizes])
    is_orphan = np.r_[np.zeros(seeds.n, bool), np.ones(orphans.n, bool)]
    raw = np.arange(sizes.size)
    if pl.per_slice:
        z = np.concatenate([seeds.first_z(), orphans.first_z()])
        order = np.lexsort((raw, is_orphan, z))
    else:
        order = raw
    keep = sizes[order] >= max(int(pl.min_size), 1)
    final = np.zeros(sizes.size + 1, np.int64)
    final[1 + order[keep]] = np.arange(1, int(keep.sum()) + 1)
    if final.size and int(final.max()) > np.iinfo(np.int32).max:
        raise InputError(f"{int(final.max())} objects do not fit int32 label ids: raise the thresholds or --min-size")
    return final
