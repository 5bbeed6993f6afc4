"""Ranges and sizes on the command line: ``--z START:STOP``, ``--roi z0:z1,y0:y1,x0:x1``, ``--block Z,Y,X``.

One parser for every command. Conventions: half-open Python ranges in voxels of the volume
(``16:20`` = slices 16, 17, 18, 19); an empty side means the volume's start or end (``:8``,
``16:``); negative numbers count from the end, as in numpy. Steps are not allowed. A ROI lists
one range per spatial axis in (z, y, x) order; fewer ranges leave the remaining axes whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from slicewise.errors import InputError

Roi = tuple[slice, slice, slice]


def parse_range(text: str | None, what: str = "--z") -> slice:
    """``"16:20"`` → ``slice(16, 20)``; ``None`` or ``""`` → the whole axis ``slice(None)``."""
    if text is None or str(text).strip() in ("", ":"):
        return slice(None)
    parts = str(text).strip().split(":")
    if len(parts) != 2:
        raise InputError(f"{what} {text!r} is not a range: write START:STOP (half-open, e.g. 16:20)")
    try:
        start, stop = (int(p) if p.strip() else None for p in parts)
    except ValueError:
        raise InputError(f"{what} {text!r} is not a range of integers: write START:STOP (e.g. 16:20)") from None
    return slice(start, stop)


def parse_roi(text: str | None, what: str = "--roi") -> Roi:
    """``"0:8,100:356,:"`` → three slices (z, y, x); missing trailing axes are whole."""
    if text is None or not str(text).strip():
        return (slice(None), slice(None), slice(None))
    items = [t for t in str(text).split(",")]
    if len(items) > 3:
        raise InputError(f"{what} {text!r} has {len(items)} ranges: give at most three, z0:z1,y0:y1,x0:x1")
    sl = [parse_range(t, what) for t in items]
    return tuple(sl + [slice(None)] * (3 - len(sl)))  # type: ignore[return-value]


def combine(z: str | None = None, roi: str | None = None) -> Roi:
    """The ROI from ``--z`` and ``--roi`` together (``--z`` may not contradict the ROI's z range)."""
    r = parse_roi(roi)
    if z is not None and str(z).strip():
        zs = parse_range(z)
        if r[0] != slice(None) and r[0] != zs:
            raise InputError(f"--z {z} and --roi {roi} give different z ranges: give the z range once")
        r = (zs, r[1], r[2])
    return r


def resolve_roi(roi: Roi | Sequence[slice] | None, shape: Sequence[int], what: str = "--roi") -> Roi:
    """Clip to concrete non-negative bounds for a volume of ``shape`` (Z, Y, X[, C]); reject empty ranges."""
    if roi is None:
        roi = (slice(None),) * 3
    out = []
    for axis, (s, n) in enumerate(zip(tuple(roi) + (slice(None),) * (3 - len(roi)), shape[:3])):
        if s.step not in (None, 1):
            raise InputError(f"{what}: steps are not supported, got {s}")
        start, stop, _ = s.indices(int(n))
        if stop <= start:
            name = "zyx"[axis]
            raise InputError(
                f"{what}: the {name} range {_fmt(s)} is empty for a volume of {name}-size {n}: give START < STOP within 0..{n}"
            )
        out.append(slice(start, stop))
    return tuple(out)  # type: ignore[return-value]


def roi_shape(roi: Roi) -> tuple[int, int, int]:
    """Shape of a resolved ROI."""
    return tuple(int(s.stop - s.start) for s in roi)  # type: ignore[return-value]


def _fmt(s: slice) -> str:
    return f"{'' if s.start is None else s.start}:{'' if s.stop is None else s.stop}"


def parse_sizes(value: Any, n: int, what: str, example: str, minimum: int = 1) -> tuple[int, ...]:
    """``8`` / ``"32,512,512"`` / ``"32x512x512"`` / ``(32, 512, 512)`` → ``n`` ints ``>= minimum``.

    A single value is repeated ``n`` times (``--halo 8`` = 8,8,8). One parser for every size option
    (tile, block, halo, batch size, ...), so they all read and fail alike.
    """
    try:
        if isinstance(value, str):
            items = [int(v) for v in value.replace("x", ",").split(",") if v.strip()]
        elif np.ndim(value) == 0:
            items = [int(value)] * n
        else:
            items = [int(v) for v in value]
    except (TypeError, ValueError):
        raise InputError(f"{what} {value!r} is not {n} integers: write e.g. {example}") from None
    if len(items) == 1:
        items = items * n
    if len(items) != n or min(items) < minimum:
        raise InputError(f"{what} {value!r} must be {'one or ' if n > 1 else ''}{n} integers >= {minimum}, e.g. {example}")
    return tuple(items)
