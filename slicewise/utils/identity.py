"""Identity of an input, recorded by resumable jobs and checked before they resume.

A long job (chunked / block-wise prediction, training) that resumes must read the *same* data it
began with, not merely a file at the same path. :func:`input_identity` records, cheaply and without
reading the whole volume: shape, dtype, bytes on disk, modification time (ns) and a SHA-256 over a
few sampled regions (the first, middle and last slice, each at its centre and four corners, 64×64
pixels). :func:`check_identity` compares two records and raises a one-line error naming what changed.
For a folder store (Zarr, PNG folder) size and mtime are taken over its metadata files and its
top-level entries, not every chunk, so the check stays O(1) for a 10^10-voxel store; the sampled
hash then carries the content check.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from slicewise.errors import InputError

SAMPLE = 64
_META = (".zarray", ".zgroup", ".zattrs", "zarr.json", "attributes.json")


def _stat(path: Path) -> tuple[int, int]:
    """(bytes, mtime_ns) of a file, or of a folder's metadata files and top-level entries."""
    if path.is_file():
        st = path.stat()
        return int(st.st_size), int(st.st_mtime_ns)
    size, mtime = 0, int(path.stat().st_mtime_ns)
    with os.scandir(path) as it:
        for entry in it:
            st = entry.stat()
            mtime = max(mtime, int(st.st_mtime_ns))
            if entry.is_file():
                size += int(st.st_size)
            elif entry.is_dir():
                for name in _META:
                    meta = Path(entry.path) / name
                    if meta.is_file():
                        ms = meta.stat()
                        size += int(ms.st_size)
                        mtime = max(mtime, int(ms.st_mtime_ns))
    return size, mtime


def sampled_hash(volume: Any, sample: int = SAMPLE) -> str:
    """SHA-256 (hex, 16 chars) over 15 small regions of a Z×Y×X(×C) array-like (lazy volumes read only those)."""
    shape = tuple(int(s) for s in volume.shape)
    h = hashlib.sha256(repr((shape, str(np.dtype(volume.dtype)))).encode())
    depth, hgt, wid = shape[0], shape[1], shape[2]
    sy, sx = min(sample, hgt), min(sample, wid)
    ys = sorted({0, max(0, (hgt - sy) // 2), hgt - sy})
    xs = sorted({0, max(0, (wid - sx) // 2), wid - sx})
    for z in sorted({0, depth // 2, depth - 1}):
        for y in ys:
            for x in xs:
                block = np.ascontiguousarray(np.asarray(volume[z, y : y + sy, x : x + sx]))
                h.update(block.tobytes())
    return h.hexdigest()[:16]


def input_identity(volume: Any, path: str | os.PathLike | None = None) -> dict[str, Any]:
    """A JSON-ready record of ``volume`` (and of its file ``path``, when it came from one)."""
    rec: dict[str, Any] = {
        "shape": [int(s) for s in volume.shape],
        "dtype": str(np.dtype(volume.dtype)),
        "sample_sha256": sampled_hash(volume),
    }
    if path is not None:
        p = Path(path)
        if not p.exists() and ":" in p.name:  # "file.h5:key" / "store.zarr:key"
            p = p.with_name(p.name.rsplit(":", 1)[0])
        if p.exists():
            rec["path"] = str(p.resolve())
            rec["bytes"], rec["mtime_ns"] = _stat(p)
    return rec


def check_identity(
    recorded: dict[str, Any] | None,
    current: dict[str, Any],
    what: str = "input",
    fix: str = "pass --overwrite to start afresh, or restore the original input",
) -> None:
    """Raise :class:`InputError` if ``current`` differs from ``recorded`` in any field both carry."""
    if not recorded:
        return
    for key in ("shape", "dtype", "sample_sha256", "bytes", "mtime_ns"):
        if key in recorded and key in current and recorded[key] != current[key]:
            raise InputError(
                f"{what} changed since the interrupted run began ({key} {recorded[key]} → {current[key]}): "
                f"resuming would mix results of two different inputs; {fix}"
            )
