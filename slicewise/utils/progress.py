"""Progress bars: one place decides how long work is shown (tqdm, on stderr)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress(iterable: Iterable[T], desc: str = "", total: int | None = None, disable: bool | None = None) -> Iterator[T]:
    """Wrap ``iterable`` in a tqdm bar; hidden when stderr is not a terminal or SLICEWISE_NO_PROGRESS is set."""
    if disable is None:
        disable = bool(os.environ.get("SLICEWISE_NO_PROGRESS")) or None
    return iter(tqdm(iterable, desc=desc, total=total, disable=disable, leave=False, dynamic_ncols=True))
