"""Output paths that know their format: the checks before any work, and write-then-rename for files and folders.

The mechanism (claims, temporary siblings, full-disk errors, the rename) is :mod:`slicewise.utils.atomic`'s;
this module adds what needs the format table (:mod:`slicewise.data.io.formats`): which output kind a path names
(a Zarr store by its suffix, a single file), which kind an existing folder is (by its marker files), and which
inputs a path names (``file.h5:key``). An existing output is replaced only by an output of its own kind, and a
folder only when slicewise provably wrote it (:mod:`slicewise.utils.ownership`).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from slicewise.data.io.formats import (
    AUDIT_REPORT_FILES,
    DATASET_MARKERS,
    FOLDER_KINDS,
    ZARR_MARKERS,
    folder_kind,
    output_kind,
)
from slicewise.data.io.readers import split_container_key
from slicewise.errors import InputError
from slicewise.utils.atomic import (
    check_writable_folder,
    folder_not_file,
    replace_path,
    write_then_rename,
)
from slicewise.utils.ownership import MARKER, check_folder, mark_owned, read_manifest

__all__ = ["atomic_path", "check_output_path", "publish", "stamp_folder"]


def _input_path(item: Any) -> Path | None:
    """The file or store an input names (``file.h5:key`` → ``file.h5``), when it exists; else None."""
    if not isinstance(item, (str, os.PathLike)) or not os.fspath(item):
        return None
    try:
        p, _ = split_container_key(Path(os.fspath(item)), None)
    except (InputError, ValueError):
        return None
    return p if p.exists() else None


def _same_path(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` are one file or folder (symlinks, relative paths and hard links resolved)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _check_named(path: str | os.PathLike, p: Path, kind: str | None) -> None:
    """Refuse an output that names no file or folder of its own (an empty path, ``.``, ``..``)."""
    if p.name not in ("", ".", ".."):
        return
    noun = "file" if kind in (None, "file") else "folder"
    example = p / ("result.json" if noun == "file" else "out.zarr" if kind == "zarr" else "report")
    raise InputError(
        f"output {os.fspath(path) or repr('')} names no {noun} of its own: give a path that ends in a new "
        f"{noun} name, e.g. {example}"
    )


def _check_not_an_input(p: Path, inputs: Iterable[Any]) -> None:
    """Refuse an output that is, or holds, one of ``inputs``."""
    for item in inputs:
        src = _input_path(item)
        if src is None:
            continue
        if _same_path(p, src):
            raise InputError(f"output {p} is also an input: choose another output path")
        if p.exists() and p.is_dir() and any(_same_path(p, parent) for parent in Path(os.path.realpath(src)).parents):
            raise InputError(f"output {p} holds the input {item}: choose another output path")


def _check_existing(p: Path, overwrite: bool, kind: str | None) -> None:
    """Refuse to replace an existing output of another kind (even with ``overwrite``), any existing output without
    ``overwrite``, and a folder slicewise cannot prove it wrote."""
    if kind == "file" and p.is_dir():
        raise folder_not_file(p)
    if kind in FOLDER_KINDS and folder_kind(p) != kind:
        what = "a folder but not" if p.is_dir() else "a file, not"
        raise InputError(
            f"output {p} already exists and is {what} {FOLDER_KINDS[kind]}, so it is not replaced even with "
            f"--overwrite: choose another path (or delete it yourself)"
        )
    if not overwrite:
        raise InputError(f"output {p} already exists: pass --overwrite (overwrite=True) or choose another path")
    if kind in FOLDER_KINDS and p.is_dir() and not p.is_symlink():
        _check_replaceable(p, kind)  # before any work: a folder holding the user's files is never replaced


def check_output_path(
    path: str | os.PathLike, overwrite: bool = False, inputs: Iterable[Any] = (), kind: str | None = None
) -> Path:
    """Check output ``path`` before any work and return it as a Path; raise a one-line :class:`InputError` when

    - it names no file or folder of its own (an empty path, ``.``, ``..``);
    - it is, or holds, one of ``inputs`` (paths, ``file.h5:key``; other values are skipped), with or without
      ``overwrite``;
    - it exists and is not an output of ``kind``, even with ``overwrite``: ``"file"`` must not be a folder; a
      folder kind (:data:`~slicewise.data.io.formats.FOLDER_KINDS`: ``"zarr"``, ``"report"``, ``"dataset"``,
      ``"png"``) must be a folder with that kind's markers (:func:`~slicewise.data.io.formats.folder_kind`).
      ``kind`` defaults to :func:`~slicewise.data.io.formats.output_kind` of the suffix;
    - it exists and ``overwrite`` is False;
    - it is an output folder that slicewise cannot prove it wrote (:mod:`slicewise.utils.ownership`), even with
      ``overwrite``;
    - its folder cannot be created or written (:func:`~slicewise.utils.atomic.check_writable_folder`).
    """
    if kind not in (None, "file", *FOLDER_KINDS):
        raise ValueError(f"unknown output kind {kind!r}: use 'file' or one of {', '.join(FOLDER_KINDS)}")
    p = Path(path)
    kind = kind or output_kind(p)
    _check_named(path, p, kind)
    _check_not_an_input(p, inputs)
    if p.exists():
        _check_existing(p, overwrite, kind)
    check_writable_folder(p.parent, what=f"output {p}")
    return p


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = True, kind: str | None = None) -> Iterator[Path]:
    """Yield a temporary sibling path; on success rename it to ``path`` (file or directory).

    ``path`` is checked first (:func:`check_output_path` with ``kind``: an existing output of another kind is
    never replaced). The output is claimed (:func:`slicewise.utils.atomic.claim_output`) for the duration, so a
    concurrent writer is refused. On an exception the temporary file/folder is removed and ``path`` is left
    untouched. The temporary name keeps the suffix so format detection by extension still works.
    """
    final = check_output_path(path, overwrite=overwrite, kind=kind)
    with write_then_rename(final, overwrite, finish=_finish) as tmp:
        yield tmp


def _finish(tmp: Path, final: Path) -> Path:
    """Stamp a folder output as slicewise's own, then publish it."""
    if tmp.is_dir() and not tmp.is_symlink():  # a folder output: everything in it is ours
        stamp_folder(tmp)
    return publish(tmp, final)


def stamp_folder(folder: Path) -> None:
    """Write the ownership marker of a freshly written folder output, listing every file in it."""
    files = [q.relative_to(folder).as_posix() for q in folder.rglob("*") if not q.is_dir() and q.name != MARKER]
    mark_owned(folder, folder_kind(folder) or "folder", files)


def publish(tmp: str | os.PathLike, final: str | os.PathLike) -> Path:
    """Rename ``tmp`` (file or folder) onto ``final``; an existing ``final`` is replaced through a backup rename.

    A last guard against deleting what is not an output: a folder at ``final`` is replaced only by a folder, and
    not when both are output folders of different kinds (:func:`~slicewise.data.io.formats.folder_kind`); else a
    one-line :class:`InputError`.
    """
    tmp, final = Path(tmp), Path(final)
    if final.is_dir() and not final.is_symlink():
        if not tmp.is_dir():
            raise folder_not_file(final)
        want = folder_kind(tmp)
        if want is not None and folder_kind(final) != want:
            raise InputError(
                f"output {final} is a folder but not {FOLDER_KINDS[want]}, so it is not replaced even with "
                f"--overwrite: choose another path (or delete it yourself)"
            )
        _check_replaceable(final, want)
    return replace_path(tmp, final)


_LEGACY_FOLDERS = {  # files of folder outputs written before ownership markers: such a folder is replaced as before
    "zarr": (
        re.compile(r"(.+/)?(\.zarray|\.zgroup|\.zattrs|\.zmetadata|zarr\.json|c(/\d+)+|\d+([./]\d+)*)"),
        ZARR_MARKERS,
    ),
    "report": (re.compile(r"[^/]+\.(html|json|png|svg|csv|css)"), AUDIT_REPORT_FILES),
    "dataset": (re.compile(r"[^/]+\.(json|tif|tiff|h5|hdf5|hdf|png|csv|yaml)|[^/]+\.zarr/.+"), DATASET_MARKERS),
}


def _check_replaceable(final: Path, want: str | None) -> None:
    """Refuse in one line to replace folder ``final`` unless slicewise provably wrote it: its ownership marker
    lists everything in it (:mod:`slicewise.utils.ownership`), or — a folder written before markers — it is of
    kind ``want`` and holds only that kind's files. Nothing of the user's is ever removed by a replacement."""
    marker = read_manifest(final)
    if marker is not None:
        check_folder(final, marker["kind"], what="output")
        return
    if want == "png":
        return  # folder_kind already proved it holds nothing but .png files
    pattern, proof = _LEGACY_FOLDERS.get(want or "", (None, ()))
    check_folder(
        final,
        want or "folder",
        legacy=None if pattern is None else pattern.fullmatch,
        legacy_proof=proof,
        what="output",
    )
