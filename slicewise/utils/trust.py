"""Verification of downloads: recorded checksums, terminal warnings, archive size guards.

- A download whose publisher gives no checksum is fetched *unverified*: :func:`warn` prints one
  ``warning:`` line on stderr saying so, and its SHA-256 is recorded in the user cache
  (``<cache>/sha256.json``, :func:`record_sha256`) on that first fetch; later downloads of the
  same entry (a cleared cache, another machine sharing the cache) are checked against it
  (trust on first use, as ``pip``'s hash-pinning or ``huggingface_hub`` etags do).
- Archives are extracted only when the sum of their members' uncompressed sizes stays under a
  limit (:func:`check_archive`): at most ``SLICEWISE_MAX_EXTRACT_BYTES`` (default 200 GB), at
  most the free space of the target disk, and at most ``MAX_RATIO`` × the archive size for any
  archive that expands beyond 1 GB (a zip bomb expands 1000× or more; EM data compress < 100×).
"""

from __future__ import annotations

import json
import os
import sys
import tarfile
import zipfile
from pathlib import Path

from slicewise.errors import InputError
from slicewise.utils.atomic import write_json
from slicewise.utils.cache import cache_root

HASHES_NAME = "sha256.json"
MAX_BYTES_ENV = "SLICEWISE_MAX_EXTRACT_BYTES"
DEFAULT_MAX_BYTES = 200 * 10**9
MAX_RATIO = 200
RATIO_FLOOR = 10**9  # the ratio guard applies to archives that expand beyond this many bytes


def warn(message: str) -> None:
    """One ``warning: <message>`` line on stderr (downloads that could not be verified)."""
    print(f"warning: {' '.join(message.split())}", file=sys.stderr, flush=True)


def hashes_path(cache_dir: str | os.PathLike | None = None) -> Path:
    """The user-cache registry of SHA-256 digests recorded at first download."""
    return cache_root(cache_dir) / HASHES_NAME


def recorded_sha256(key: str, cache_dir: str | os.PathLike | None = None) -> str | None:
    """The digest recorded for ``key`` (``"dataset/<name>/<file>"``, ``"weights/<name>"``), or None."""
    p = hashes_path(cache_dir)
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError):
        return None
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, str) and len(value) == 64 else None


def record_sha256(key: str, digest: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Add ``key → digest`` to the user-cache registry (atomic rewrite; other keys kept)."""
    p = hashes_path(cache_dir)
    try:
        data = json.loads(p.read_text())
        data = data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        data = {}
    data[key] = digest
    p.parent.mkdir(parents=True, exist_ok=True)
    write_json(p, data, overwrite=True, indent=1, sort_keys=True)
    return p


def max_extract_bytes() -> int:
    """The absolute extraction limit: ``$SLICEWISE_MAX_EXTRACT_BYTES`` or 200 GB."""
    text = os.environ.get(MAX_BYTES_ENV, "").strip()
    try:
        return int(float(text)) if text else DEFAULT_MAX_BYTES
    except ValueError:
        raise InputError(f"{MAX_BYTES_ENV}={text!r} is not a number of bytes (e.g. 5e10)") from None


def archive_size(path: str | os.PathLike) -> int:
    """Sum of the uncompressed member sizes a zip or tar archive declares (bytes)."""
    p = Path(path)
    try:
        if zipfile.is_zipfile(p):
            with zipfile.ZipFile(p) as z:
                return sum(max(0, i.file_size) for i in z.infolist())
        with tarfile.open(p) as t:
            return sum(max(0, m.size) for m in t.getmembers() if m.isfile())
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as err:
        raise InputError(
            f"cannot read archive {p} ({type(err).__name__}): the archive is damaged or incomplete, download it again"
        ) from None


def check_archive(path: str | os.PathLike, target: str | os.PathLike) -> int:
    """Refuse, in one line, an archive whose uncompressed total is too large; returns that total (bytes)."""
    p = Path(path)
    total = archive_size(p)
    packed = max(1, p.stat().st_size)
    limit = max_extract_bytes()
    if total > limit:
        raise InputError(
            f"archive {p} expands to {total / 1e9:.3g} GB, over the extraction limit of {limit / 1e9:.3g} GB "
            f"({MAX_BYTES_ENV}): a damaged or malicious archive (zip bomb)? Raise the limit only for a "
            f"file you trust"
        )
    if total > RATIO_FLOOR and total > MAX_RATIO * packed:
        raise InputError(
            f"archive {p} expands {total / packed:.0f}-fold ({packed / 1e6:.3g} MB → {total / 1e9:.3g} GB), "
            f"more than the {MAX_RATIO}-fold any image data set compresses: refused as a likely zip bomb"
        )
    folder = Path(target)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
    except (OSError, AttributeError):
        free = None
    if free is not None and total > free:
        raise InputError(
            f"archive {p} expands to {total / 1e9:.3g} GB but only {free / 1e9:.3g} GB are free under "
            f"{folder}: free space or pass --cache-dir on a larger disk"
        )
    return total
