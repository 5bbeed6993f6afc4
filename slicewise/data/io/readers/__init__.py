"""Opening volumes: :func:`open_volume` dispatches through :data:`READERS`, a table of one reader per format.

A reader names its suffixes, the files that mark a folder as its format (Zarr's ``.zarray`` /
``.zgroup`` / ``zarr.json``) and whether it holds keyed datasets (HDF5, Zarr, N5: ``key`` or
``"file.h5:key"``). Dispatch order: a glob pattern (image slices); a keyed container by suffix; a
folder with a format's marker; a folder of 2-D images; a file reader by suffix.
"""

from __future__ import annotations

import glob as globmod
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from slicewise.data.io.formats import (
    HDF5_SUFFIXES,
    IMAGE_SUFFIXES,
    N5_SUFFIXES,
    SLICE_SUFFIXES,
    TIFF_SUFFIXES,
    ZARR_MARKERS,
    ZARR_SUFFIXES,
)
from slicewise.data.io.readers.hdf5 import open_hdf5
from slicewise.data.io.readers.images import open_image, open_image_files
from slicewise.data.io.readers.n5 import open_n5
from slicewise.data.io.readers.tiff import open_tiff
from slicewise.data.io.readers.zarr_store import open_zarr
from slicewise.data.io.volume import Volume
from slicewise.errors import InputError
from slicewise.utils.inputs import check_input_path

__all__ = [
    "HDF5_SUFFIXES",
    "IMAGE_SUFFIXES",
    "N5_SUFFIXES",
    "READERS",
    "SUPPORTED",
    "TIFF_SUFFIXES",
    "ZARR_SUFFIXES",
    "Reader",
    "open_image_files",
    "open_volume",
    "split_container_key",
]

SUPPORTED = (
    ".tif/.tiff (multi-page TIFF), .png/.jpg/.jpeg/.bmp (2-D image), a folder or glob of 2-D images, "
    ".h5/.hdf5/.hdf (HDF5, 'file.h5:key'), .zarr (Zarr v2/v3), .n5 (needs zarr<3)"
)


@dataclass(frozen=True)
class Reader:
    """One input format: ``open(path, key)`` returns a lazy :class:`Volume`."""

    name: str
    suffixes: tuple[str, ...]
    open: Callable[[Path, str | None], Volume]
    keyed: bool = False  # holds named datasets selected by ``key``
    markers: tuple[str, ...] = ()  # entries that make a folder (of any name) this format


READERS: tuple[Reader, ...] = (
    Reader("hdf5", HDF5_SUFFIXES, open_hdf5, keyed=True),
    Reader("n5", N5_SUFFIXES, open_n5, keyed=True),
    Reader("zarr", ZARR_SUFFIXES, open_zarr, keyed=True, markers=ZARR_MARKERS),
    Reader("tiff", TIFF_SUFFIXES, open_tiff),
    Reader("image", IMAGE_SUFFIXES, open_image),
)
_KEYED_SUFFIXES = tuple(s for r in READERS if r.keyed for s in r.suffixes)


def split_container_key(p: Path, key: str | None) -> tuple[Path, str | None]:
    """Split ``file.h5:key`` / ``file.h5/key`` / ``store.zarr/key`` into (file, key)."""
    if p.exists():
        return p, key
    text = str(p)
    for suffix in _KEYED_SUFFIXES:
        for sep in (suffix + ":", suffix + "/"):
            i = text.lower().find(sep)
            if i >= 0:
                inner = text[i + len(sep) :].strip("/")
                if key is not None and inner and inner != key:
                    raise InputError(
                        f"two keys given for {text[: i + len(suffix)]}: {inner!r} in the path and key={key!r}"
                    )
                return Path(text[: i + len(suffix)]), inner or key
    return p, key


def open_volume(path: str | os.PathLike, key: str | None = None) -> Volume:
    """Open a volume file lazily (see :mod:`slicewise.data.io` for formats and conventions).

    Raises a one-line :class:`InputError` for a missing file, an unsupported format, a missing HDF5/Zarr
    key (listing the keys that exist) or a special file (FIFO, socket, device, symlink loop: refused by
    :func:`slicewise.utils.inputs.check_input_path` before anything opens it).
    """
    if isinstance(path, Volume):
        return path
    text = os.fspath(path)
    if any(c in text for c in "*?[") and not Path(text).exists():
        return _open_glob(text)
    p, key = split_container_key(check_input_path(text), key)
    check_input_path(p)
    if not p.exists():
        raise InputError(f"input {p} does not exist: check the path")
    suffix = p.suffix.lower()
    reader = next((r for r in READERS if suffix in r.suffixes), None)
    if key and reader is not None and not reader.keyed:
        raise InputError(
            f"{p} is an image file, which has no dataset keys: drop the key {key!r} (keys select "
            f"datasets in HDF5 / Zarr / N5 files)"
        )
    if reader is not None and (reader.keyed or not p.is_dir()):
        return reader.open(p, key)
    if p.is_dir():
        return _open_folder(p, key)
    raise InputError(f"unsupported input format {suffix or '(no suffix)'!r} for {p}: supported are {SUPPORTED}")


def _open_glob(pattern: str) -> Volume:
    """The 2-D images a glob pattern matches, one slice per file."""
    files = [Path(f) for f in globmod.glob(pattern)]
    files = [check_input_path(f) for f in files if f.suffix.lower() in SLICE_SUFFIXES]
    if not files:
        raise InputError(f"no image files match {pattern!r}: check the pattern")
    return open_image_files(files, pattern)


def _open_folder(p: Path, key: str | None) -> Volume:
    """A folder: the format its marker files name (a Zarr store of any name), else its 2-D images."""
    marked = next((r for r in READERS if any((p / m).exists() for m in r.markers)), None)
    if marked is not None:
        return marked.open(p, key)
    files = [
        f for f in p.iterdir() if f.is_file() and f.suffix.lower() in SLICE_SUFFIXES and not f.name.startswith(".")
    ]
    if not files:
        raise InputError(
            f"folder {p} holds no 2-D images ({', '.join(SLICE_SUFFIXES)}) "
            f"and is not a Zarr store: supported inputs are {SUPPORTED}"
        )
    return open_image_files(files, str(p))
