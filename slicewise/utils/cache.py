"""Where downloads go and whether they are allowed (shared by dataset and weight fetching)."""

from __future__ import annotations

import os
from pathlib import Path


def offline() -> bool:
    """True when downloads are forbidden (``SLICEWISE_OFFLINE`` set to a non-empty, non-0 value)."""
    return os.environ.get("SLICEWISE_OFFLINE", "") not in ("", "0")


def cache_root(path: str | os.PathLike | None = None) -> Path:
    """Cache root: ``path``, else ``$SLICEWISE_CACHE``, else ``~/.cache/slicewise``."""
    return Path(path or os.environ.get("SLICEWISE_CACHE") or Path.home() / ".cache" / "slicewise").expanduser()
