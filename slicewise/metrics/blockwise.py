"""Block-wise accumulation of everything :func:`~slicewise.metrics.evaluate.evaluate` needs.

One pass over (z, y, x) blocks reads each block of the prediction, the ground truth and (for AP)
the foreground probability once, and returns per block: the distinct (gt, pred) label pairs with
their counts, and per predicted id the sum of the foreground probability; with ``per_slice``
the same keyed by z. Partial results are summed, so memory is one block plus the distinct label
pairs (and ids), never the volume, and every metric equals the in-memory value: counts are
integers, and probability sums are accumulated as integers too (each voxel's probability rounded
to a multiple of 2**-24, the float32 resolution at 1), so no sum depends on how the volume was cut.

Parallel (``dask``): ``None`` runs blocks in this process; ``"threads"`` (or ``"threads:N"``) on a
pool of threads in this process (what dask's threaded scheduler does, without building a graph:
numpy, h5py and zarr release the GIL while counting and reading); ``"local:N"`` starts a
``distributed.LocalCluster`` of N single-threaded worker processes; ``"tcp://host:port"`` joins a
running scheduler (the address grammar and cluster of :func:`slicewise.utils.cluster.connect`, as
``predict --dask``; workers must see the same files; in-memory arrays are sent once per worker). At most
two blocks per worker are in flight and each result is merged as it arrives, so the client holds the label
pairs, not the blocks.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from slicewise.data.grid import Box
from slicewise.errors import InputError
from slicewise.metrics.contingency import Contingency, count_pairs, merge_counts
from slicewise.utils import progress
from slicewise.utils.cluster import connect

#: default evaluation block (z, y, x): 8 Mi voxels, ~64 MB of 64-bit keys while counting.
DEFAULT_BLOCK: tuple[int, int, int] = (8, 1024, 1024)
#: probability sums are integers in units of 2**-24.
SCORE_UNIT = 2.0**-24

Triples = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass
class Counts:
    """Accumulated pairs (gt, pred, count) and per-pred-id probability sums (integer units), volume and per z."""

    pairs: list[Triples] = field(default_factory=list)
    sums: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    slice_pairs: dict[int, list[Triples]] = field(default_factory=dict)
    slice_sums: dict[int, list[tuple[np.ndarray, np.ndarray]]] = field(default_factory=dict)

    def add(self, other: Counts) -> None:
        self.pairs += other.pairs
        self.sums += other.sums
        for z, v in other.slice_pairs.items():
            self.slice_pairs.setdefault(z, []).extend(v)
        for z, s in other.slice_sums.items():
            self.slice_sums.setdefault(z, []).extend(s)
        if len(self.pairs) > 64:  # keep the client's memory at the distinct pairs
            t = merge_counts(self.pairs)
            r, c, n = t.pairs()
            self.pairs = [(t.gt_ids[r], t.pred_ids[c], n)]
            if self.sums:
                self.sums = [_merge_sums(self.sums)]


def _merge_sums(parts: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    ids = np.concatenate([p[0] for p in parts])
    vals = np.concatenate([p[1] for p in parts])
    uniq, inv = np.unique(ids, return_inverse=True)
    out = np.zeros(uniq.size, np.int64)
    np.add.at(out, inv.ravel(), vals)
    return uniq, out


def _sums(pred: np.ndarray, fg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    units = np.rint(fg.astype(np.float64) / SCORE_UNIT).astype(np.int64).ravel()
    ids, inv = np.unique(pred.ravel(), return_inverse=True)
    out = np.zeros(ids.size, np.int64)
    np.add.at(out, inv.ravel(), units)
    return ids.astype(np.int64), out


def _check_values(block: np.ndarray, name: str) -> None:
    if block.size and np.issubdtype(block.dtype, np.signedinteger) and int(block.min()) < 0:
        raise InputError(
            f"{name} labels hold negative values (min {int(block.min())}): label ids must be >= 0 (0 = background)"
        )


@dataclass(frozen=True)
class BlockTask:
    """What one worker needs to count one region (picklable: lazy volumes travel as their paths)."""

    pred: Any
    gt: Any
    fg: Any
    """None, or a lazy foreground-probability view shaped like ``pred`` (:class:`~slicewise.data.io.lazy.LazyView`)."""
    per_slice: bool

    def __call__(self, region: Box) -> Counts:
        p = np.asarray(self.pred[region])
        g = np.asarray(self.gt[region])
        _check_values(p, "prediction")
        _check_values(g, "ground-truth")
        f = None if self.fg is None else self.fg[region]
        out = Counts()
        if not self.per_slice:
            out.pairs.append(count_pairs(p, g))
            if f is not None:
                out.sums.append(_sums(p, f))
            return out
        for i in range(p.shape[0]):
            z = region[0].start + i
            t = count_pairs(p[i], g[i])
            out.pairs.append(t)
            out.slice_pairs[z] = [t]
            if f is not None:
                s = _sums(p[i], f[i])
                out.sums.append(s)
                out.slice_sums[z] = [s]
        return out


def count_blocks(task: BlockTask, regions: Sequence[Box], dask: str | None = None) -> Counts:
    """Run ``task`` over ``regions`` (in this process, on threads or on dask.distributed) and sum the results.

    At most two blocks per worker are in flight; each result is merged as it arrives.
    """
    total = Counts()
    if dask is None:
        for r in progress(regions, desc="evaluating blocks", total=len(regions)):
            total.add(task(r))
        return total
    if dask == "threads" or dask.startswith("threads:"):
        n = _count(dask, os.cpu_count() or 1)
        with ThreadPoolExecutor(n) as pool:
            _stream(
                lambda r: pool.submit(task, r), regions, 2 * n, lambda f: wait(f, return_when=FIRST_COMPLETED), total
            )
        return total
    from distributed import wait as wait_futures

    with connect(dask) as client:
        shared = client.scatter(task, broadcast=True)  # the task (and any in-memory array) travels once per worker
        n = max(1, len(client.scheduler_info().get("workers", {})))
        _stream(
            lambda r: client.submit(_call, shared, r, pure=False),
            regions,
            2 * n,
            lambda f: wait_futures(f, return_when="FIRST_COMPLETED"),
            total,
        )
    return total


def _call(task: BlockTask, region: Box) -> Counts:
    return task(region)


def _count(spec: str, default: int) -> int:
    tail = spec.partition(":")[2]
    try:
        n = int(tail) if tail else default
    except ValueError:
        n = 0
    if n < 1:
        raise InputError(f"--dask {spec!r}: write threads or threads:N with N >= 1 threads")
    return n


def _stream(
    submit: Callable[[Box], Any],
    regions: Sequence[Box],
    window: int,
    wait_first: Callable[[set[Any]], Any],
    total: Counts,
) -> None:
    """Keep ``window`` blocks in flight, merging each finished one into ``total``."""
    it = iter(regions)
    pending = {submit(r) for r in itertools.islice(it, window)}
    bar = progress(range(len(regions)), desc="evaluating blocks", total=len(regions))
    bar_it = iter(bar)
    while pending:
        done, pending = wait_first(pending)
        pending = set(pending)
        for fut in done:
            total.add(fut.result())
            next(bar_it, None)
        pending |= {submit(r) for r in itertools.islice(it, len(done))}
    for _ in bar_it:
        pass


def tables(
    counts: Counts, with_scores: bool
) -> tuple[Contingency, np.ndarray | None, dict[int, tuple[Contingency, np.ndarray | None]]]:
    """The volume table and instance scores, and per z the same, from summed :class:`Counts`."""
    vol = merge_counts(counts.pairs)
    per: dict[int, tuple[Contingency, np.ndarray | None]] = {}
    for z in sorted(counts.slice_pairs):
        t = merge_counts(counts.slice_pairs[z])
        per[z] = (t, _scores(t, counts.slice_sums.get(z, [])) if with_scores else None)
    return vol, (_scores(vol, counts.sums) if with_scores else None), per


def _scores(table: Contingency, sums: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Mean foreground probability per non-zero predicted id, in the order of ``table.pred_ids``."""
    total = np.zeros(table.pred_ids.size, np.float64)
    if sums:
        ids, vals = _merge_sums(sums)
        total[np.searchsorted(table.pred_ids, ids)] = vals.astype(np.float64) * SCORE_UNIT
    keep = table.pred_ids != 0
    return (total / np.maximum(table.pred_sizes, 1))[keep]
