"""Damaged and incomplete files: the one-line error for a file that opens but cannot be read (:func:`damaged`),
tifffile's warnings of a truncated TIFF collected into that error (:func:`tifffile_warnings`), and the count of
Zarr chunks missing from a store (:func:`warn_missing_chunks`), and zarr's warning about slicewise's own ownership
marker silenced while a group's members are listed (:func:`zarr_listing`).

Missing chunks: zarr reads a chunk whose file is missing as the fill value, silently. Opening an array counts
its chunks against the store listing and warns in one line with the count, unless the array or its group
declares sparse data with the attribute ``"sparse": true`` (chunks left out on purpose because they equal the
fill value, as zarr-python does by default). slicewise writes every chunk of its own stores
(``write_empty_chunks``), so a missing chunk there is a lost file.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import warnings
from collections.abc import Iterator
from typing import Any

from slicewise.errors import InputError
from slicewise.utils.ownership import MARKER

log = logging.getLogger(__name__)

SPARSE_ATTR = "sparse"
_warned: set[str] = set()
#: zarr's warning for a file in a group that is no Zarr node, matched for the ownership marker only.
_MARKER_WARNING = rf"Object at (.*/)?{re.escape(MARKER)} is not recognized as a component of a Zarr hierarchy"


def damaged(source: Any, err: BaseException) -> InputError:
    """The one-line error for a file that opened but fails when read (truncated strip or chunk, bad codec data)."""
    detail = " ".join(str(err).split())[:160]
    return InputError(
        f"cannot read {source}: the file is damaged or incomplete ({type(err).__name__}"
        f"{': ' + detail if detail else ''}): re-export or re-download it"
    )


class _TiffCollector(logging.Handler):
    """The one handler on tifffile's logger while any thread is inside :func:`tifffile_warnings`: a warning goes
    to the innermost collection of the thread that logged it (none outside: dropped, not printed)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.local = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        stack = getattr(self.local, "stack", None)
        if stack:
            stack[-1].append(record.getMessage())


_TIFF_LOG = logging.getLogger("tifffile")
_TIFF_COLLECTOR = _TiffCollector()
_TIFF_LOCK = threading.Lock()
_tiff_users = 0
_tiff_propagate = True


@contextlib.contextmanager
def tifffile_warnings() -> Iterator[list[str]]:
    """Collect tifffile's log warnings (e.g. "invalid page offset" of a truncated file) while a TIFF is
    opened, instead of letting them reach the terminal; the caller turns them into one error. Thread-safe: the
    logger is switched once for all threads inside, and each thread collects its own warnings."""
    global _tiff_users, _tiff_propagate
    seen: list[str] = []
    with _TIFF_LOCK:
        if _tiff_users == 0:
            _tiff_propagate = _TIFF_LOG.propagate
            _TIFF_LOG.addHandler(_TIFF_COLLECTOR)
            _TIFF_LOG.propagate = False
        _tiff_users += 1
    stack = _TIFF_COLLECTOR.local.__dict__.setdefault("stack", [])
    stack.append(seen)
    try:
        yield seen
    finally:
        stack.pop()
        with _TIFF_LOCK:
            _tiff_users -= 1
            if _tiff_users == 0:
                _TIFF_LOG.removeHandler(_TIFF_COLLECTOR)
                _TIFF_LOG.propagate = _tiff_propagate


@contextlib.contextmanager
def zarr_listing() -> Iterator[None]:
    """Silence, while a Zarr group's members are listed, zarr's warning that the ownership marker
    (:data:`slicewise.utils.ownership.MARKER`, which slicewise writes into the output folders it owns) is no Zarr
    node; every other warning, about any other file, still reaches the user."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_MARKER_WARNING)
        yield


def _declares_sparse(attrs: Any) -> bool:
    try:
        return dict(attrs or {}).get(SPARSE_ATTR) is True
    except (TypeError, ValueError):
        return False


def warn_missing_chunks(arr: Any, source: str, group_attrs: Any = None) -> int:
    """The number of chunks of zarr array ``arr`` missing from its store (compared with the expected chunk keys);
    one warning line per source and process when it is not 0 and neither the array nor its group (``group_attrs``)
    declares ``"sparse": true``. Returns 0 for declared-sparse arrays and stores that cannot be listed."""
    if _declares_sparse(getattr(arr, "attrs", None)) or _declares_sparse(group_attrs):
        return 0
    try:
        total, present = int(arr.nchunks), int(arr.nchunks_initialized)
    except Exception:  # noqa: BLE001 - a store that cannot list its keys (N5 adaptors, ...): nothing to compare
        return 0
    missing = max(0, total - present)
    if missing and source not in _warned:
        _warned.add(source)
        log.warning(
            "%s: %d of %d chunks are missing and read as the fill value %s: restore the missing chunk files "
            '(an incomplete copy?), or set the attribute "sparse": true if they were left out on purpose',
            source,
            missing,
            total,
            getattr(arr, "fill_value", 0),
        )
    return missing
