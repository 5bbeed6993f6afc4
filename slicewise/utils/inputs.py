"""Cheap checks of the files a command names, made before anything heavy (torch, timm, Lightning) is imported.

A typo in a path is answered in about a second: the CLI commands and the napari widgets call these first
(volumes are checked by :func:`slicewise.data.open_volume`, which is light too; configs by
:func:`slicewise.config.read_yaml_mapping`). Only the standard library and :mod:`slicewise.errors` are imported.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from slicewise.errors import InputError

__all__ = ["check_input_path", "check_model_file"]

_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def check_input_path(path: str | os.PathLike[str], what: str = "input") -> Path:
    """``path`` as a Path if it is missing, a regular file or a folder (callers report a missing path in their
    own words); a one-line :class:`InputError` for a FIFO, socket, device or a symlink loop, checked with
    ``stat`` only (never opened, so a FIFO cannot hang the process)."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise InputError(f"{what} {p} is a symbolic link loop: point it at a real file or folder") from None
        if err.errno in (errno.ENOENT, errno.ENOTDIR):
            return p
        raise InputError(
            f"{what} {p} cannot be examined ({os.strerror(err.errno or 0) or err}): check the path and its permissions"
        ) from None
    for test, kind in _KINDS:
        if test(st.st_mode):
            raise InputError(
                f"{what} {p} is {kind}, not a regular file or folder: give the file itself "
                f"(save a stream to a file first)"
            )
    return p


def check_model_file(path: str | Path) -> Path:
    """``path`` as a Path if it is a file; a one-line :class:`InputError` for a folder (naming the model file
    inside it, if any), a missing path or a special file (:func:`check_input_path`)."""
    p = check_input_path(path, "model file")
    if p.is_dir():
        inside = next((p / n for n in ("best.pt", "last.pt") if (p / n).is_file()), None)
        fix = (
            f"give the model file inside it, e.g. {inside}"
            if inside is not None
            else "give a model file (a .pt written by slicewise train / save_model, or a bioimage.io .zip)"
        )
        raise InputError(f"model file {p} is a folder, not a file: {fix}")
    if not p.is_file():
        raise InputError(f"model file {p} does not exist: check the path")
    return p
