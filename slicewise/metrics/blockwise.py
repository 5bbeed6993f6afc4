"""Block-wise accumulation of everything :func:`~slicewise.metrics.evaluate.evaluate` needs.

One pass over (z, y, x) blocks reads each block of the prediction, the ground truth and (for AP)
the foreground probability once, and returns per block: the distinct (gt, pred) label pairs with
their counts, and per predicted id the sum of the foreground probability; with ``per_slice``
the same keyed by z. Partial results are summed, so memory is one block plus the distinct label
pairs (and ids), never the volume, and every metric equals the in-memory value: counts are
integers, and probability sums are accumulated as integers too (each voxel's probability rounded
to a multiple of 2**-24, the float32 resolution at 1), so no sum depends on how the volume was cut.

Parallel (``dask``): ``None`` runs blocks in this process; ``"threads"`` (or ``"threads:N"``) on
dask's threaded scheduler; ``"local:N"`` starts a ``distributed.LocalCluster`` of N single-threaded
worker processes; ``"tcp://host:port"`` joins a running scheduler (workers must see the same
files). Results are gathered as blocks finish and merged at once, so the client holds the label
pairs, not the blocks.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from slicewise.errors import InputError
from slicewise.metrics.contingency import Contingency, count_pairs, merge_counts
from slicewise.utils import progress

#: default evaluation block (z, y, x): 8 Mi voxels, ~64 MB of 64-bit keys while counting.
DEFAULT_BLOCK: tuple[int, int, int] = (8, 1024, 1024)
#: probability sums are integers in units of 2**-24.
SCORE_UNIT = 2.0**-24

Region = tuple[slice, slice, slice]
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
        raise InputError(f"{name} labels hold negative values (min {int(block.min())}): label ids must be >= 0 (0 = background)")


@dataclass(frozen=True)
class BlockTask:
    """What one worker needs to count one region (picklable: lazy volumes travel as their paths)."""

    pred: Any
    gt: Any
    fg: Callable[[Region], np.ndarray] | None
    per_slice: bool

    def __call__(self, region: Region) -> Counts:
        p = np.asarray(self.pred[region])
        g = np.asarray(self.gt[region])
        _check_values(p, "prediction")
        _check_values(g, "ground-truth")
        f = None if self.fg is None else self.fg(region)
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


def count_blocks(task: BlockTask, regions: Sequence[Region], dask: str | None = None) -> Counts:
    """Run ``task`` over ``regions`` (sequentially or on dask) and sum the results."""
    total = Counts()
    if dask is None:
        for r in progress(regions, desc="evaluating blocks", total=len(regions)):
            total.add(task(r))
        return total
    if dask == "threads" or dask.startswith("threads:"):
        import dask as dask_mod

        workers = int(dask.partition(":")[2] or (os.cpu_count() or 1))
        parts = dask_mod.compute(*[dask_mod.delayed(task)(r) for r in regions], scheduler="threads", num_workers=workers)
        for part in parts:
            total.add(part)
        return total
    from distributed import as_completed

    with _client(dask) as client:
        futures = client.map(task, list(regions), pure=False)
        for fut in progress(as_completed(futures), desc="evaluating blocks", total=len(futures)):
            total.add(fut.result())
            fut.release()
    return total


@contextlib.contextmanager
def _client(address: str) -> Iterator[Any]:
    """A dask.distributed Client for ``local:N`` (new LocalCluster) or ``tcp://host:port``."""
    from distributed import Client, LocalCluster

    if address.startswith("local:"):
        try:
            n = int(address.split(":", 1)[1])
        except ValueError:
            n = 0
        if n < 1:
            raise InputError(f"--dask {address!r}: write local:N with N >= 1 worker processes, e.g. local:2")
        with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            yield client
        return
    if address.startswith("tcp://"):
        try:
            client = Client(address, timeout="10s")
        except OSError as err:
            raise InputError(f"--dask {address}: cannot reach the scheduler ({err}): start it or check the address") from None
        with client:
            yield client
        return
    raise InputError(f"--dask {address!r} is not an address: use threads, threads:N, local:N or tcp://host:port")


def tables(counts: Counts, with_scores: bool) -> tuple[Contingency, np.ndarray | None, dict[int, tuple[Contingency, np.ndarray | None]]]:
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
