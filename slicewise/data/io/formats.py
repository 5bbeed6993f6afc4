"""THE format table: which suffixes and marker files mean which format, for reading and writing alike.

Every suffix test, marker-file test and fallback channel name in the package comes from here:

- input / output formats by suffix (:data:`TIFF_SUFFIXES`, :data:`IMAGE_SUFFIXES`, :data:`HDF5_SUFFIXES`,
  :data:`ZARR_SUFFIXES`, :data:`N5_SUFFIXES`) and the files that mark a folder of any name as a Zarr store
  (:data:`ZARR_MARKERS`);
- the output folders slicewise writes and may later replace with ``--overwrite`` (:data:`FOLDER_KINDS`,
  recognized by :func:`folder_kind`), the suffixes of single-file outputs (:data:`FILE_SUFFIXES`) and the
  kind a path names by its suffix (:func:`output_kind`);
- the files that mark a slicewise report folder (:data:`REPORT_MARKERS`) and a converted dataset folder
  (:data:`DATASET_MARKERS`);
- the name of a channel that carries none (:func:`channel_name`).

Adding a format means one reader (:mod:`slicewise.data.io.readers`), one writer and its suffixes here.
"""

from __future__ import annotations

import os
from pathlib import Path

from slicewise.utils.ownership import MARKER

__all__ = [
    "AUDIT_REPORT_FILES",
    "DATASET_MARKERS",
    "FILE_SUFFIXES",
    "FOLDER_KINDS",
    "HDF5_SUFFIXES",
    "IMAGE_SUFFIXES",
    "N5_SUFFIXES",
    "PREDICTION_SUFFIXES",
    "REPORT_MARKERS",
    "SLICE_SUFFIXES",
    "TIFF_SUFFIXES",
    "ZARR_MARKERS",
    "ZARR_SUFFIXES",
    "channel_name",
    "named_channels",
    "folder_kind",
    "output_kind",
]

TIFF_SUFFIXES = (".tif", ".tiff")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
SLICE_SUFFIXES = IMAGE_SUFFIXES + TIFF_SUFFIXES
"""Files that can be slices of a folder or glob stack."""
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf")
ZARR_SUFFIXES = (".zarr",)
N5_SUFFIXES = (".n5",)
ZARR_MARKERS = (".zarray", ".zgroup", "zarr.json")
"""Entries that make a folder of any name a Zarr store (v2 array, v2 group, v3 node)."""
PREDICTION_SUFFIXES = ZARR_SUFFIXES + HDF5_SUFFIXES + TIFF_SUFFIXES
"""Outputs a prediction (or a block-wise array store) can be written to."""

FILE_SUFFIXES = (
    ".json",
    *TIFF_SUFFIXES,
    *HDF5_SUFFIXES,
    ".zip",
    ".csv",
    ".png",
    ".svg",
    ".html",
    ".txt",
    ".yaml",
    ".yml",
    ".pt",
    ".pth",
    ".ckpt",
    ".parquet",
    ".npy",
    ".npz",
)
"""Suffixes of outputs that are single files: an existing folder at such a path is never replaced."""

AUDIT_REPORT_FILES = ("index.html", "report.json")
"""Files every audit report folder holds (:func:`slicewise.diagnostics.report.write_report`): all of them make a
folder an output of kind ``"report"``."""

REPORT_MARKERS = ("report.json", "report.html", "index.html", "results.json")
"""Files that mark a slicewise report folder (audit, study report, demo results): any one of them."""

DATASET_MARKERS = ("metadata.json",)
"""Files every converted dataset folder holds (:func:`slicewise.data.registry.fetch`)."""

FOLDER_KINDS = {
    "zarr": "a Zarr store",
    "report": "a slicewise report folder",
    "dataset": "a slicewise dataset folder",
    "png": "a folder of PNG slices",
}
"""Folder outputs that ``--overwrite`` may replace, only when the existing folder is of the same kind."""


def folder_kind(path: str | os.PathLike) -> str | None:
    """The kind of output folder ``path`` is, by its marker files: ``"zarr"`` (:data:`ZARR_MARKERS`), ``"report"``
    (:data:`AUDIT_REPORT_FILES`), ``"dataset"`` (:data:`DATASET_MARKERS`), ``"png"`` (nothing but ``.png`` files:
    a volume written as PNG slices), else None."""
    p = Path(path)
    if not p.is_dir():
        return None
    if any((p / m).is_file() for m in ZARR_MARKERS):
        return "zarr"
    if all((p / m).is_file() for m in AUDIT_REPORT_FILES):
        return "report"
    if all((p / m).is_file() for m in DATASET_MARKERS):
        return "dataset"
    entries = [e for e in p.iterdir() if e.name != MARKER]
    if entries and all(e.is_file() and e.suffix.lower() == ".png" for e in entries):
        return "png"
    return None


def output_kind(path: str | os.PathLike) -> str | None:
    """The kind of output ``path`` names by its suffix: ``"zarr"`` (:data:`ZARR_SUFFIXES`), ``"file"``
    (:data:`FILE_SUFFIXES`), else None (a folder or file of no known kind: only the exists / ``overwrite`` rule
    applies)."""
    suffix = Path(path).suffix.lower()
    return "zarr" if suffix in ZARR_SUFFIXES else "file" if suffix in FILE_SUFFIXES else None


def channel_name(i: int) -> str:
    """The name of channel ``i`` when nothing names it: ``class<i>`` (as a model without class names calls its
    segmentation channels)."""
    return f"class{int(i)}"


def named_channels(names: object, n: int) -> list[str]:
    """``names`` as ``n`` strings when it is a list / tuple of exactly ``n`` entries, else :func:`channel_name`
    for each of the ``n`` channels."""
    if isinstance(names, (list, tuple)) and len(names) == n:
        return [str(v) for v in names]
    return [channel_name(i) for i in range(n)]
