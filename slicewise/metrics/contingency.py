"""Sparse contingency tables between two label arrays: the basis of every metric here.

``table.counts[i, j]`` is the number of voxels with ground-truth label ``table.gt_ids[i]`` and
predicted label ``table.pred_ids[j]`` (rows: ground truth, columns: prediction, as in
``skimage.metrics.contingency_table``). Only label pairs that occur are stored.

Speed and memory: each array is read once, in chunks along the first axis or in 3-D blocks
(``block``), so lazy HDF5 / Zarr volumes are never loaded whole; in each chunk the two labels
are packed into one 64-bit key and counted with ``np.unique``; chunk results are merged at the
end, so memory is one chunk plus the distinct label pairs. A 100×1024×1024 pair takes seconds
(``benchmarks/metrics_speed.py``).

Label values: any integer or bool dtype; uint64 volumes (CREMI, most Zarr / N5 segmentations)
are accepted when their values fit int64 (below 2**63), which is checked chunk by chunk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse

from slicewise.data.grid import block_grid
from slicewise.errors import InputError
from slicewise.utils import progress

#: voxels per chunk (about 8 slices of 1024²): bounds the temporary 64-bit key arrays to ~64 MB.
CHUNK_VOXELS = 2**23

_SHIFT = np.uint64(32)
_LOW = np.uint64(2**32 - 1)
_INT64_MAX = int(np.iinfo(np.int64).max)


@dataclass(frozen=True)
class Contingency:
    """A sparse contingency table with its label ids and marginals (all counts in voxels).

    Attributes:
        gt_ids: sorted ground-truth label values present, shape (n_gt,), int64.
        pred_ids: sorted predicted label values present, shape (n_pred,), int64.
        counts: ``scipy.sparse.csr_array`` (n_gt, n_pred) of int64 overlap counts.
        gt_sizes: row sums (voxels per ground-truth label), int64.
        pred_sizes: column sums (voxels per predicted label), int64.
    """

    gt_ids: np.ndarray
    pred_ids: np.ndarray
    counts: sparse.csr_array
    gt_sizes: np.ndarray
    pred_sizes: np.ndarray

    @property
    def n_voxels(self) -> int:
        """Total number of voxels counted."""
        return int(self.gt_sizes.sum())

    def without_gt(self, labels: tuple[int, ...] | list[int]) -> Contingency:
        """The table restricted to voxels whose ground-truth label is not in ``labels``.

        Predicted sizes are recounted over the remaining voxels; predicted labels left with
        no voxel are dropped.
        """
        keep = ~np.isin(self.gt_ids, np.asarray(labels, dtype=np.int64))
        if keep.all():
            return self
        counts = self.counts[keep]
        pred_sizes = np.asarray(counts.sum(axis=0)).ravel().astype(np.int64)
        cols = pred_sizes > 0
        counts = sparse.csr_array(counts[:, cols])
        return Contingency(self.gt_ids[keep], self.pred_ids[cols], counts, self.gt_sizes[keep], pred_sizes[cols])

    def pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Stored entries as (row index, column index, count) arrays (indices into the id arrays)."""
        coo = self.counts.tocoo()
        return coo.row.astype(np.int64), coo.col.astype(np.int64), coo.data.astype(np.int64)


def check_label_pair(pred: Any, gt: Any) -> None:
    """Raise a one-line :class:`InputError` unless ``pred`` and ``gt`` are same-shape integer label arrays."""
    for name, a in (("prediction", pred), ("ground truth", gt)):
        dtype = np.dtype(a.dtype) if hasattr(a, "dtype") else np.asarray(a).dtype  # never read a lazy volume here
        if not (np.issubdtype(dtype, np.integer) or dtype == np.bool_):
            raise InputError(
                f"{name} labels have dtype {dtype}: label maps must hold integer ids "
                f"(convert with .astype(np.int64) after checking the values are whole numbers)"
            )
    if tuple(pred.shape) != tuple(gt.shape):
        raise InputError(
            f"prediction shape {tuple(pred.shape)} differs from ground-truth shape {tuple(gt.shape)}: "
            f"they must match voxel for voxel"
        )


def contingency_table(
    pred: Any, gt: Any, chunk_voxels: int = CHUNK_VOXELS, block: Sequence[int] | None = None
) -> Contingency:
    """Count voxels per (ground-truth label, predicted label) pair.

    Args:
        pred, gt: label arrays of equal shape (any integer or bool dtype, any number of
            dimensions), numpy arrays or lazy volumes indexable along the first axis.
        chunk_voxels: voxels read per chunk along the first axis.
        block: for 3-D arrays, read (z, y, x) blocks of this shape instead of whole-section chunks.
    """
    check_label_pair(pred, gt)
    shape = tuple(pred.shape)
    if len(shape) == 0:
        pred, gt, shape = np.reshape(pred, (1,)), np.reshape(gt, (1,)), (1,)
    if block is not None and len(shape) == 3:
        regions: list[Any] = block_grid(shape, block)
    else:
        per_row = int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else 1
        step = max(1, chunk_voxels // max(per_row, 1))
        regions = [slice(z, z + step) for z in range(0, shape[0], step)]
    parts = [
        _count_chunk(np.asarray(pred[r]).ravel(), np.asarray(gt[r]).ravel())
        for r in progress(regions, desc="contingency table", total=len(regions))
    ]
    return merge_counts(parts)


def ids_text(ids: np.ndarray) -> str:
    """Label ids as messages show them: the first six, then ``...``, e.g. ``{0, 1, 255}``."""
    vals = [int(v) for v in ids[:6]]
    return "{" + ", ".join(map(str, vals)) + (", ..." if ids.size > 6 else "") + "}"


def merge_counts(parts: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> Contingency:
    """A :class:`Contingency` from (gt value, pred value, count) triples of several chunks (summed)."""
    if not parts:
        empty = np.zeros(0, np.int64)
        return _build(empty, empty, empty)
    g, p, c = (np.concatenate(x) for x in zip(*parts))
    return _build(g, p, c)


def count_pairs(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (gt value, pred value) pairs of two same-shape label blocks and their counts (int64)."""
    return _count_chunk(np.asarray(pred).ravel(), np.asarray(gt).ravel())


def _count_chunk(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (gt value, pred value) pairs of one chunk with their counts (int64 arrays).

    Both labels become codes below 2**32, packed into one uint64 key and counted by ``np.unique``.
    """
    if pred.size == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty
    g_code, g_how = _codes(gt)
    p_code, p_how = _codes(pred)
    key = g_code.astype(np.uint64) << _SHIFT
    key |= p_code.astype(np.uint64, copy=False)
    keys, counts = np.unique(key, return_counts=True)
    return (
        _decode((keys >> _SHIFT).astype(np.int64), g_how),
        _decode((keys & _LOW).astype(np.int64), p_how),
        counts.astype(np.int64),
    )


def _codes(a: np.ndarray) -> tuple[np.ndarray, int | np.ndarray]:
    """Codes in [0, 2**32) for label values and how to decode them.

    Decoding is an int offset (value = code + offset) when the value range fits in 32 bits,
    otherwise the sorted value array (value = values[code], via ``np.unique``).
    """
    if a.dtype == np.bool_:
        return a.view(np.uint8), 0
    lo, hi = int(a.min()), int(a.max())
    if hi > _INT64_MAX:
        raise InputError(
            f"label value {hi} ({a.dtype}) does not fit int64: ids must be below 2**63 (relabel the volume)"
        )
    if lo >= 0 and hi < 2**32:
        return a, 0
    if hi - lo < 2**32:
        return a.astype(np.int64) - lo, lo
    values, inverse = np.unique(a, return_inverse=True)
    return inverse.ravel(), values.astype(np.int64)


def _decode(codes: np.ndarray, how: int | np.ndarray) -> np.ndarray:
    return codes + how if isinstance(how, int) else how[codes]


def _build(g: np.ndarray, p: np.ndarray, c: np.ndarray) -> Contingency:
    """Merge (gt value, pred value, count) triples (duplicates summed) into a :class:`Contingency`."""
    gt_ids, rows = np.unique(g, return_inverse=True)
    pred_ids, cols = np.unique(p, return_inverse=True)
    counts = sparse.csr_array(
        sparse.coo_array((c, (rows.ravel(), cols.ravel())), shape=(gt_ids.size, pred_ids.size)).tocsr()
    )
    counts.sum_duplicates()
    gt_sizes = np.asarray(counts.sum(axis=1)).ravel().astype(np.int64)
    pred_sizes = np.asarray(counts.sum(axis=0)).ravel().astype(np.int64)
    return Contingency(gt_ids.astype(np.int64), pred_ids.astype(np.int64), counts, gt_sizes, pred_sizes)
