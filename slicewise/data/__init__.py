"""Data: volume I/O, 2.5D stacking, datasets (registry) and the synthetic EM phantom.

``make_phantom`` is imported lazily from :mod:`slicewise.data.synthetic`.
"""

from __future__ import annotations

import importlib
from typing import Any

from slicewise.data.io import (
    Volume,
    as_volume,
    check_labels,
    check_raw,
    create_zarr,
    open_volume,
    summarize_volume,
    write_volume,
)
from slicewise.data.stacking import stack_slices, to_unit_float, valid_centres

_LAZY = {
    "make_phantom": "slicewise.data.synthetic",
    "fetch": "slicewise.data.registry",
    "list_datasets": "slicewise.data.registry",
}

__all__ = [
    "Volume",
    "as_volume",
    "check_labels",
    "check_raw",
    "create_zarr",
    "open_volume",
    "summarize_volume",
    "write_volume",
    "stack_slices",
    "to_unit_float",
    "valid_centres",
]  # lazy names (make_phantom, fetch, list_datasets) stay out of ``import *`` so it never fails


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'slicewise.data' has no attribute {name!r}")
