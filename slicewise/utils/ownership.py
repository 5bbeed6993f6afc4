"""Ownership of output folders: slicewise removes only what it can prove it wrote itself.

A folder a command writes into (a training run, a pretraining run, a study, a demo, a folder output
published by :func:`slicewise.data.io.outputs.atomic_path`) carries a marker file, :data:`MARKER`
(``.slicewise-run.json``)::

    {"slicewise": "output-folder", "version": 1, "kind": "train", "entries": ["config.yaml", "logs/version_0/", ...]}

``entries`` is the manifest: paths relative to the folder of the files the command wrote, and of folders
it created and owns whole (a trailing ``/``, e.g. a Lightning logger's ``logs/version_0/``). It is written
atomically and updated as files are added (:func:`record`). The one removal function,
:func:`remove_owned`, deletes only manifest entries, never follows a symlink (an entry behind a linked
folder is refused) and never removes anything that is not listed. Before a command reuses or replaces a
folder, :func:`check_folder` refuses in one line a folder holding anything else (a user's ``notes.txt``,
a file under ``checkpoints/``), whatever the flags (``--restart``, ``--overwrite``, ``--resume``).

Not counted as foreign: the marker, claims (``.<name>.lock``) and the temporary, backup and partial
siblings of slicewise's own naming scheme (:func:`slicewise.utils.atomic.temp_sibling`: ``.<stem>.tmp-<hex>``,
``.<name>.old-<hex>``, ``.<stem>.partial<suffix>[.state]``), which only slicewise writers make.

Folders written before markers existed have none: a caller passes ``legacy``, a predicate on each
relative file path of the old layout (e.g. :func:`slicewise.training.run.legacy_run_entry`). A folder
without a marker whose every file matches it (and that holds ``legacy_proof``, a file only a real run
writes) is adopted: its marker is written listing exactly those files. A folder with anything else is refused.

Reusable by every command that writes a run folder: :func:`prepare_run_folder` is the one call
(check, adopt, mark) a Lightning run (``train``, ``pretrain``) makes before it writes anything.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import stat
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from slicewise.errors import ConfigError, InputError, WeightsError
from slicewise.utils.atomic import write_json

__all__ = [
    "MARKER",
    "check_folder",
    "foreign_entries",
    "is_owned",
    "mark_owned",
    "prepare_run_folder",
    "read_manifest",
    "record",
    "remove_owned",
    "removed_if_refused",
]

MARKER = ".slicewise-run.json"
_TAG = "output-folder"
_VERSION = 1
# hidden names only slicewise writers make: claims, temporary / backup siblings, partial outputs and their state
_OURS = re.compile(
    r"\..+\.lock|\..+\.tmp-[0-9a-f]{8}.*|\..+\.old-[0-9a-f]{8}|\..+\.partial.*|\.slicewise-write-probe-.*"
)


def _entry(value: Any, marker: Path) -> str:
    """A manifest entry checked to stay inside its folder: relative, no ``..``, no empty part."""
    if not isinstance(value, str) or not value.strip("/"):
        raise InputError(
            f"{marker} is damaged: entries must be relative paths (found {value!r}); delete the folder yourself "
            f"or choose another output"
        )
    p = PurePosixPath(value)
    if p.is_absolute() or ".." in p.parts or "\\" in value:
        raise InputError(
            f"{marker} lists {value!r}, a path outside its folder: it was not written by slicewise; "
            f"choose another output (nothing is removed)"
        )
    return value


def read_manifest(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The validated marker of ``folder`` (``{"kind", "entries"}``), None when it has none; one-line
    :class:`InputError` for a damaged or forged marker (entries outside the folder, wrong types)."""
    marker = Path(folder) / MARKER
    if not marker.exists() and not marker.is_symlink():
        return None
    if marker.is_symlink() or not marker.is_file():
        raise InputError(f"{marker} is not a regular file: it was not written by slicewise; choose another output")
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        raise InputError(
            f"{marker} is damaged (not JSON): delete the folder yourself or choose another output"
        ) from None
    if (
        not isinstance(data, dict)
        or data.get("slicewise") != _TAG
        or not isinstance(data.get("kind"), str)
        or not isinstance(data.get("entries"), list)
    ):
        raise InputError(
            f"{marker} is not a slicewise folder marker (needs slicewise={_TAG!r}, kind, entries): "
            f"choose another output"
        )
    return {"kind": data["kind"], "entries": sorted({_entry(e, marker) for e in data["entries"]})}


def _write(folder: Path, kind: str, entries: Iterable[str]) -> None:
    write_json(
        folder / MARKER,
        {"slicewise": _TAG, "version": _VERSION, "kind": kind, "entries": sorted(set(entries))},
        overwrite=True,
        indent=1,
    )


def _relative(folder: Path, path: str | os.PathLike, is_dir: bool = False) -> str:
    p = Path(path)
    rel = p.relative_to(folder) if p.is_absolute() or p.parts[: len(folder.parts)] == folder.parts else p
    s = rel.as_posix().strip("/")
    if s in ("", ".") or ".." in PurePosixPath(s).parts:
        raise ValueError(f"{path} is not inside {folder}")
    return s + "/" if is_dir else s


def mark_owned(folder: str | os.PathLike, kind: str, entries: Iterable[str] = ()) -> None:
    """Create ``folder`` if needed and write its marker (kind ``kind``), keeping the entries it already lists."""
    f = Path(folder)
    f.mkdir(parents=True, exist_ok=True)
    old = read_manifest(f)
    _write(f, kind, [*(old["entries"] if old else []), *entries])


def record(folder: str | os.PathLike, *paths: str | os.PathLike, dirs: bool = False) -> None:
    """Add ``paths`` (absolute, or relative to ``folder``) to the manifest; ``dirs``: folders owned whole."""
    f = Path(folder)
    old = read_manifest(f)
    if old is None:
        raise InputError(f"{f} has no {MARKER}: it is not a slicewise output folder")
    new = {_relative(f, p, dirs) for p in paths}
    if not new <= set(old["entries"]):
        _write(f, old["kind"], [*old["entries"], *new])


def _covered(rel: str, entries: list[str]) -> bool:
    return any(rel == e or (e.endswith("/") and rel.startswith(e)) for e in entries)


def _walk(folder: Path) -> Iterable[tuple[str, bool]]:
    """(relative path, is a folder) of everything under ``folder``, symlinks as files, never followed."""
    for root, dirs, files in os.walk(folder, followlinks=False):
        r = Path(root)
        for name in list(dirs):
            if (r / name).is_symlink():  # os.walk lists links to folders among dirs: a link is a file here
                dirs.remove(name)
                files.append(name)
        for name in files:
            yield (r / name).relative_to(folder).as_posix(), False
        for name in dirs:
            yield (r / name).relative_to(folder).as_posix() + "/", True


def foreign_entries(folder: str | os.PathLike, entries: Iterable[str]) -> list[str]:
    """Files and symlinks under ``folder`` (relative paths) that neither ``entries`` cover nor slicewise's
    own hidden names (:data:`MARKER`, claims, temporary siblings) account for; empty folders are ignored."""
    f = Path(folder)
    listed = list(entries)
    out = []
    for rel, is_dir in _walk(f):
        name = rel.rstrip("/").rsplit("/", 1)[-1]
        if is_dir:
            continue
        if rel == MARKER or _OURS.fullmatch(name) or _covered(rel, listed) or _in_ours(rel):
            continue
        out.append(rel)
    return sorted(out)


def _in_ours(rel: str) -> bool:
    """Whether ``rel`` lies inside a folder of slicewise's own hidden naming scheme (a partial output, its state)."""
    return any(_OURS.fullmatch(part) for part in rel.split("/")[:-1])


def is_owned(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` carries a valid marker and holds nothing its manifest does not list."""
    m = read_manifest(folder)
    return m is not None and not foreign_entries(folder, m["entries"])


def _listing(names: list[str], n: int = 3) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def check_folder(
    folder: str | os.PathLike,
    kind: str,
    legacy: Callable[[str], bool] | None = None,
    legacy_proof: Iterable[str] = (),
    what: str = "output folder",
) -> str:
    """Check that ``folder`` may be used (or replaced) by a command writing ``kind``; return its state:
    ``"new"`` (absent or empty), ``"ours"`` (its marker lists everything in it) or ``"legacy"`` (no marker,
    but every file matches ``legacy`` and one of ``legacy_proof`` exists: adopt it with :func:`prepare_run_folder`).

    Refuses in one line a folder of another kind, one that holds anything slicewise did not write, a file
    where the folder should be, and a symlinked folder — whatever flags the command was given.
    """
    f = Path(folder)
    if f.is_symlink():
        raise InputError(
            f"{what} {f} is a symbolic link: slicewise writes only into real folders; give the target folder itself"
        )
    if not f.exists():
        return "new"
    if not f.is_dir():
        raise InputError(f"{what} {f} is a file, not a folder: choose another path")
    m = read_manifest(f)
    if m is not None:
        if m["kind"] != kind:
            raise InputError(f"{what} {f} holds a slicewise {m['kind']} output, not a {kind} one: choose another path")
        foreign = foreign_entries(f, m["entries"])
        if foreign:
            raise InputError(
                f"{what} {f} holds files slicewise did not write ({_listing(foreign)}): nothing is removed or "
                f"replaced, whatever the flags; move them out or choose another path"
            )
        return "ours"
    files = [
        rel
        for rel, is_dir in _walk(f)
        if not is_dir and not _OURS.fullmatch(rel.rsplit("/", 1)[-1]) and not _in_ours(rel)
    ]
    if not files:
        return "new"
    foreign = [rel for rel in files if legacy is None or not legacy(rel)]
    if foreign or not any((f / p).is_file() for p in legacy_proof):
        shown = foreign or files
        raise InputError(
            f"{what} {f} already exists and holds files slicewise did not write ({_listing(sorted(shown))}), "
            f"so nothing in it is removed or replaced, whatever the flags: choose another (new or empty) folder"
        )
    return "legacy"


def prepare_run_folder(
    folder: str | os.PathLike,
    kind: str,
    legacy: Callable[[str], bool] | None = None,
    legacy_proof: Iterable[str] = (),
    what: str = "run folder",
) -> str:
    """The one call a run (``train``, ``pretrain``, …) makes on its output folder before writing anything:
    :func:`check_folder`, then write the marker (a legacy folder is adopted: its marker lists the files it holds).
    Returns the state :func:`check_folder` found (``"new"``, ``"ours"``, ``"legacy"``)."""
    f = Path(folder)
    state = check_folder(f, kind, legacy, legacy_proof, what)
    if state == "legacy":
        files = [
            rel
            for rel, is_dir in _walk(f)
            if not is_dir and rel != MARKER and not _OURS.fullmatch(rel.rsplit("/", 1)[-1]) and not _in_ours(rel)
        ]
        mark_owned(f, kind, files)
    elif state == "new":
        existed = f.exists()
        try:
            mark_owned(f, kind)
        except BaseException:  # a full disk: leave no empty folder behind
            if not existed:
                with contextlib.suppress(OSError):
                    f.rmdir()
            raise
    return state


def _inside(folder: Path, rel: str) -> Path | None:
    """``folder / rel`` when every folder on the way is a real folder (no symlink), else None."""
    cur = folder
    for part in PurePosixPath(rel.rstrip("/")).parts[:-1]:
        cur = cur / part
        try:
            if not stat.S_ISDIR(os.lstat(cur).st_mode):
                return None
        except OSError:
            return None
    return folder / rel.rstrip("/")


def remove_owned(folder: str | os.PathLike, entries: Iterable[str] | None = None) -> list[str]:
    """Remove manifest entries of ``folder`` (all, or those of ``entries`` the manifest lists) and drop them from
    the manifest; folders emptied by it are removed up to ``folder``. A listed symlink is unlinked, never
    followed; an entry behind a symlinked folder is skipped. Returns the entries removed. Nothing that is not
    listed is ever removed; a folder without a marker raises a one-line :class:`InputError`."""
    f = Path(folder)
    m = read_manifest(f)
    if m is None:
        raise InputError(f"{f} has no {MARKER}: slicewise did not write it, so nothing in it is removed")
    listed = m["entries"]
    wanted = None if entries is None else {str(e).strip("/") for e in entries}
    todo = (
        listed
        if wanted is None
        else [e for e in listed if any(e.rstrip("/") == w or e.startswith(w + "/") for w in wanted)]
    )
    removed = []
    for rel in todo:
        p = _inside(f, rel)
        if p is None:
            continue
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            removed.append(rel)
            continue
        if stat.S_ISDIR(st.st_mode):
            if not rel.endswith("/"):
                continue  # a file entry that is now a folder: not what slicewise wrote
            shutil.rmtree(p)
        else:
            p.unlink()
        removed.append(rel)
        parent = p.parent
        while parent != f and parent.is_dir() and not parent.is_symlink() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
    _write(f, m["kind"], [e for e in listed if e not in set(removed)])
    return removed


@contextlib.contextmanager
def removed_if_refused(folder: str | os.PathLike) -> Iterator[None]:
    """Take ``folder`` away again when the block refuses its input (:class:`InputError`, :class:`ConfigError`,
    :class:`WeightsError`) and the folder did not exist before the block: a refused command leaves nothing behind.
    Only manifest entries, the marker and then the emptied folder are removed (:func:`remove_owned`); an existing
    folder, and any other failure (a signal, a full disk: state to resume from), keep everything."""
    f = Path(folder)
    existed = f.exists() or f.is_symlink()
    try:
        yield
    except (InputError, ConfigError, WeightsError):
        if not existed and read_manifest(f) is not None:
            with contextlib.suppress(OSError, InputError):
                remove_owned(f)
                (f / MARKER).unlink(missing_ok=True)
                f.rmdir()
        raise
