"""Write-then-rename: nothing half-written is ever left at a final path.

The mechanism only: claims (one writer per output), temporary siblings, the rename, free-space checks and
one-line errors for a full disk. Nothing here knows a file format; the output checks that do (a Zarr store by
its suffix, a report folder by its files, ``file.h5:key`` inputs) are :mod:`slicewise.data.io.outputs`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from slicewise.errors import InputError, WriteError

log = logging.getLogger(__name__)

__all__ = [
    "WriteError",
    "atomic_file",
    "check_creatable_folder",
    "check_file_output",
    "check_free_space",
    "check_writable_folder",
    "claim_output",
    "folder_not_file",
    "is_write_error",
    "lock_path",
    "remove_path",
    "replace_path",
    "reserve_space",
    "temp_sibling",
    "write_error",
    "write_guard",
    "write_json",
    "write_then_rename",
]


def folder_not_file(p: Path) -> InputError:
    """The one-line error for an existing folder where a file output is written."""
    return InputError(
        f"output {p} is a folder, not a file: give a file path, e.g. {p / ('result' + (p.suffix or '.json'))}"
    )


def check_file_output(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Check a single-file output ``path`` before any work and return it as a Path; raise a one-line
    :class:`InputError` when it names no file of its own, is an existing folder (even with ``overwrite``), exists
    and ``overwrite`` is False, or its folder cannot be created or written. Outputs of other kinds (Zarr stores,
    report folders, inputs named in the same call) are checked by
    :func:`slicewise.data.io.outputs.check_output_path`."""
    p = Path(path)
    if p.name in ("", ".", ".."):
        raise InputError(
            f"output {os.fspath(path) or repr('')} names no file of its own: give a path that ends in a new "
            f"file name, e.g. {p / 'result.json'}"
        )
    if p.exists():
        if p.is_dir():
            raise folder_not_file(p)
        if not overwrite:
            raise InputError(f"output {p} already exists: pass --overwrite (overwrite=True) or choose another path")
    check_writable_folder(p.parent, what=f"output {p}")
    return p


def check_writable_folder(folder: str | os.PathLike, what: str = "output") -> Path:
    """Create ``folder`` if needed and prove it writable with a probe file, before any work is done.

    Raises a one-line :class:`InputError` when a parent is a regular file, the folder is read-only,
    or the disk refuses the probe, so a long job never computes for an hour and then fails to save.
    """
    d = Path(folder) if str(folder) else Path(".")
    check_creatable_folder(d, what)  # the nearest existing ancestor: a folder, writable by its mode bits
    try:
        d.mkdir(parents=True, exist_ok=True)
        if not d.stat().st_mode & 0o222:  # read-only by its mode bits: honoured even for root, who could write
            raise PermissionError(13, "read-only folder (no write permission bits)")
        probe = d / f".slicewise-write-probe-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        probe.touch()
        probe.unlink()
    except OSError as err:
        raise InputError(
            f"cannot write {what}: folder {d} is not writable ({err.strerror}); choose a writable location"
        ) from None
    return d


def check_creatable_folder(folder: str | os.PathLike, what: str = "output") -> Path:
    """Like :func:`check_writable_folder`, but creates nothing: the folder, or its nearest existing
    ancestor, must be a writable folder (mode bits honoured even for root), not a file."""
    d = Path(folder) if str(folder) else Path(".")
    existing = d
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise InputError(f"cannot create {what}: {existing} is a file, not a folder; choose another output path")
    if existing.exists() and (not existing.stat().st_mode & 0o222 or not os.access(existing, os.W_OK | os.X_OK)):
        raise InputError(f"cannot write {what}: folder {existing} is not writable; choose a writable location")
    return d


_HELD: dict[Path, int] = {}
_HELD_LOCK = threading.Lock()


def temp_sibling(final: str | os.PathLike) -> Path:
    """A fresh temporary name next to ``final`` that keeps its suffix (format detection by extension still
    works): ``.<stem>.tmp-<8 hex><suffix>``. Written, then renamed onto ``final`` (:func:`publish`)."""
    f = Path(final)
    if f.name in ("", ".", ".."):
        raise InputError(f"output {f} names no file or folder of its own: give a path that ends in a new name")
    return f.with_name(f".{f.stem}.tmp-{uuid.uuid4().hex[:8]}{f.suffix}")


def _leftovers(final: Path) -> list[Path]:
    """Temporary and backup siblings of ``final`` (names only its writers make): while ``final`` is claimed,
    any that exist were left by a writer that was killed."""
    stem, name, suffix = re.escape(final.stem), re.escape(final.name), re.escape(final.suffix)
    pattern = re.compile(rf"\.(?:{stem}\.tmp-[0-9a-f]{{8}}{suffix}|{name}\.old-[0-9a-f]{{8}})")
    try:
        return [p for p in final.parent.iterdir() if pattern.fullmatch(p.name)]
    except OSError:
        return []


def _remove_leftovers(final: Path) -> None:
    stale = _leftovers(final)
    for p in stale:
        try:
            remove_path(p)
        except OSError as err:  # not ours to fail on: the new run writes under fresh names
            log.warning("%s: could not remove the leftover %s of an interrupted run (%s)", final, p.name, err.strerror)
    if stale:
        log.info(
            "%s: removed %d leftover(s) of an interrupted run (%s)", final, len(stale), ", ".join(p.name for p in stale)
        )


def lock_path(path: str | os.PathLike) -> Path:
    """The lock file that claims ``path``: a hidden sibling ``.<name>.lock``."""
    p = Path(path)
    return p.with_name(f".{p.name}.lock")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def claim_output(path: str | os.PathLike) -> Iterator[Path]:
    """Claim ``path`` for this process for the duration of the block, or refuse in one line.

    The claim is an exclusively created lock file ``.<name>.lock`` (pid and host inside) next to the
    output, so a second writer to the same output is refused at its start, not after it computed.
    Claims are re-entrant within a process. A lock left by a killed process on this host is taken
    over; one from another host must be removed by hand (the message says which file). On claiming, the
    temporary and backup siblings a killed writer of this output left (:func:`temp_sibling`, the backups
    of :func:`publish`) are deleted; the state a resumable job keeps (a prediction's partial output,
    segment's ``.<name>.state/``) is not one of them.
    """
    final = Path(path).absolute()
    lock = lock_path(final)
    with _HELD_LOCK:
        if final in _HELD:
            _HELD[final] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield final
        finally:
            with _HELD_LOCK:
                _HELD[final] -= 1
        return
    if not final.parent.exists():
        final.parent.mkdir(parents=True, exist_ok=True)
    me = f"{os.getpid()} {socket.gethostname()}"
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                pid_s, _, host = lock.read_text().partition(" ")
                pid = int(pid_s)
            except (OSError, ValueError):
                pid, host = -1, ""
            if host.strip() == socket.gethostname() and pid > 0 and not _pid_alive(pid):
                lock.unlink(missing_ok=True)
                continue
            raise InputError(
                f"output {final} is being written by another slicewise process ({pid} on {host.strip() or '?'}): "
                f"wait for it, choose another output, or delete {lock} if no such process runs"
            ) from None
        except OSError as err:
            raise InputError(f"cannot write next to output {final}: {err.strerror}: choose a writable folder") from None
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(me)
        except OSError as err:  # a full disk: the lock was created but its content not written
            lock.unlink(missing_ok=True)
            raise write_error(final, err) from None
        break
    with _HELD_LOCK:
        _HELD[final] = 1
    try:
        _remove_leftovers(final)
        yield final
    finally:
        with _HELD_LOCK:
            _HELD.pop(final, None)
        lock.unlink(missing_ok=True)


@contextlib.contextmanager
def write_then_rename(
    final: Path, overwrite: bool = True, finish: Callable[[Path, Path], Path] | None = None
) -> Iterator[Path]:
    """Claim the checked output ``final`` (:func:`claim_output`), yield a temporary sibling (:func:`temp_sibling`)
    and on success move it onto ``final`` with ``finish(tmp, final)`` (default :func:`replace_path`). A failed write
    is a one-line :class:`WriteError` (:func:`write_guard`); on any exception the temporary file/folder is removed
    and ``final`` is left untouched."""
    with claim_output(final):
        if final.exists() and not overwrite:
            raise InputError(f"output {final} already exists: pass --overwrite (overwrite=True) or choose another path")
        tmp = temp_sibling(final)
        try:
            with write_guard(final):
                yield tmp
                (finish or replace_path)(tmp, final)
        except BaseException:
            _remove_temporary(tmp)
            raise


def _remove_temporary(tmp: Path) -> None:
    folder = tmp.is_dir()
    remove_path(tmp)
    for _ in range(15 if folder else 0):  # zarr's async chunk writes still in flight may recreate the folder
        time.sleep(0.2)
        if not tmp.exists():
            break
        remove_path(tmp)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Write the single file ``path`` through a temporary sibling (:func:`check_file_output`, then
    :func:`write_then_rename`): nothing half-written is ever left at ``path``."""
    final = check_file_output(path, overwrite=overwrite)
    with write_then_rename(final, overwrite) as tmp:
        yield tmp


def replace_path(tmp: str | os.PathLike, final: str | os.PathLike) -> Path:
    """Rename ``tmp`` onto ``final``; an existing ``final`` is replaced through a backup rename, so ``final`` always
    holds either the old or the new content."""
    tmp, final = Path(tmp), Path(final)
    if final.is_dir() and not final.is_symlink() and not tmp.is_dir():
        raise folder_not_file(final)
    if final.exists():
        backup = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(final, backup)
        os.replace(tmp, final)
        remove_path(backup)
    else:
        os.replace(tmp, final)
    return final


_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_SPACE_TEXT = (
    "no space left",
    "disk quota exceeded",
    "file too large",
    "file write failed",
    "write failed",
    "inline_container",
    "pytorchstreamwriter",
    "unexpected pos",
)  # torch.save: its zip writer wraps the failed write


def is_write_error(err: BaseException) -> bool:
    """Whether ``err`` is a failed write: an OSError (full disk, quota, file size limit, read-only or I/O error),
    or a library's wrapping of one (torch's ``PytorchStreamWriter failed writing``, HDF5's ``write failed``)."""
    text = str(err).lower()
    if isinstance(err, OSError):
        return err.errno in (*_SPACE_ERRNOS, errno.EROFS, errno.EIO) or any(t in text for t in _SPACE_TEXT)
    return isinstance(err, RuntimeError) and any(t in text for t in _SPACE_TEXT)


def _free_bytes(path: Path) -> int | None:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return None


def _size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def write_error(
    path: str | os.PathLike, err: BaseException, needed: int | None = None, what: str = "output"
) -> WriteError:
    """The one-line :class:`WriteError` for ``err`` raised while writing ``path``."""
    p = Path(path)
    code = getattr(err, "errno", None)
    text = str(err).lower()
    free = _free_bytes(p.parent)
    full = (
        code in (errno.ENOSPC, errno.EDQUOT)
        or "no space left" in text
        or "quota" in text
        or (code is None and free is not None and free < max(needed or 0, 2**20))
    )  # a library's wrapping of a full disk
    if full or code == errno.EFBIG or "file too large" in text:
        need = f"needs about {_size(needed)}, " if needed else ""
        have = f"{_size(free)} free" if free is not None else "free space unknown"
        why = "the disk is full" if full else "the file size limit was reached"
        return WriteError(
            f"cannot write {what} {p}: {why} ({need}{have} in {p.parent}); free space or choose another "
            f"location — nothing was published, earlier outputs and resumable state are kept"
        )
    reason = getattr(err, "strerror", None) or " ".join(str(err).split())[:160] or type(err).__name__
    return WriteError(
        f"cannot write {what} {p}: {reason}; check the disk, free space and permissions — nothing was "
        f"published, earlier outputs and resumable state are kept"
    )


@contextlib.contextmanager
def write_guard(path: str | os.PathLike, needed: int | None = None, what: str = "output") -> Iterator[None]:
    """Turn a failed write (:func:`is_write_error`) inside the block into a one-line :class:`WriteError` for
    ``path``."""
    try:
        yield
    except WriteError:
        raise
    except (OSError, RuntimeError) as err:
        if not is_write_error(err):
            raise
        raise write_error(path, err, needed, what) from None


def check_free_space(path: str | os.PathLike, needed: int, what: str = "output") -> None:
    """Refuse in one line, before any work, an output of ``needed`` bytes where the disk has less free space
    (with 2 % and 64 KB of headroom for metadata). An unknown free space passes."""
    p = Path(path)
    free = _free_bytes(p.parent if p.suffix or not p.is_dir() else p)
    if free is not None and needed * 1.02 + 2**16 > free:
        raise WriteError(
            f"cannot write {what} {p}: it needs about {_size(needed)} but {p.parent} has {_size(free)} free; "
            f"free space or choose another location (nothing was computed)"
        )


def reserve_space(path: str | os.PathLike, nbytes: int, output: str | os.PathLike | None = None) -> None:
    """Allocate ``nbytes`` of file ``path`` on disk now (``posix_fallocate``), so that a memory-mapped or
    library-level write into it can never hit a full disk (SIGBUS / a crash): a full disk is a one-line
    :class:`WriteError` naming ``output`` (default ``path``) here instead. A filesystem without fallocate
    support is left as it is."""
    if not hasattr(os, "posix_fallocate") or nbytes <= 0:
        return
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, int(nbytes))
    except OSError as err:
        if err.errno in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            return
        raise write_error(output or path, err, nbytes) from None
    finally:
        os.close(fd)


def write_json(
    path: str | os.PathLike, data: Any, overwrite: bool = False, indent: int | None = 2, sort_keys: bool = False
) -> Path:
    """Write ``data`` as indented UTF-8 JSON (non-JSON values through ``str``) via :func:`atomic_file`.

    The one JSON writer of the package: every caller states ``overwrite`` (default: refuse an existing file).
    """
    with atomic_file(path, overwrite=overwrite) as tmp:
        tmp.write_text(json.dumps(data, indent=indent, default=str, sort_keys=sort_keys) + "\n", encoding="utf-8")
    return Path(path)


def remove_path(p: str | os.PathLike) -> None:
    """Delete a file, symlink or folder tree if it exists."""
    p = Path(p)
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    elif p.exists() or p.is_symlink():
        p.unlink()
