"""Write-then-rename: nothing half-written is ever left at a final path."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from slicewise.errors import InputError


def check_output_path(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Return ``path`` as a Path; raise a one-line error if it exists and ``overwrite`` is False."""
    p = Path(path)
    if p.exists() and not overwrite:
        raise InputError(f"output {p} already exists: pass --overwrite (overwrite=True) or choose another path")
    if not p.parent.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
    return p


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary sibling path; on success rename it to ``path`` (file or directory).

    On an exception the temporary file/folder is removed and ``path`` is left untouched.
    The temporary name keeps the suffix so format detection by extension still works.
    """
    final = check_output_path(path, overwrite=overwrite)
    tmp = final.with_name(f".{final.stem}.tmp-{uuid.uuid4().hex[:8]}{final.suffix}")
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    if final.exists():
        backup = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(final, backup)
        os.replace(tmp, final)
        _remove(backup)
    else:
        os.replace(tmp, final)


def write_json(path: str | os.PathLike, data: Any, overwrite: bool = False, indent: int = 2) -> Path:
    """Write ``data`` as indented UTF-8 JSON (non-JSON values through ``str``) via :func:`atomic_path`."""
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(json.dumps(data, indent=indent, default=str) + "\n", encoding="utf-8")
    return Path(path)


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    elif p.exists() or p.is_symlink():
        p.unlink()
