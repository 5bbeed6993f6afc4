"""Ranges and sizes on the command line: ``--z START:STOP``, ``--roi z0:z1,y0:y1,x0:x1``, ``--block Z,Y,X``.

One parser for every command. Conventions: half-open Python ranges in voxels of the volume
(``16:20`` = slices 16, 17, 18, 19); an empty side means the volume's start or end (``:8``,
``16:``); negative numbers count from the end, as in numpy. Steps are not allowed. A ROI lists
one range per spatial axis in (z, y, x) order; fewer ranges leave the remaining axes whole.
A range that is empty for any volume (``5:2``) is refused naming the option typed; bounds beyond
the volume are clipped as numpy does (``0:100`` on 8 slices is ``0:8``), with a one-line warning.
Sizes (:func:`parse_sizes`) are whole numbers separated by ``,`` or ``x``, every item present.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from slicewise.data.grid import Box
from slicewise.errors import InputError

log = logging.getLogger(__name__)


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
    if start is not None and stop is not None and (start < 0) == (stop < 0) and stop <= start:
        # empty whatever the volume's size: refused here, where the option's name is known
        fix = f"{stop}:{start}" if stop < start else f"{start}:{start + 1}"
        raise InputError(f"{what} {text}: the range is empty (STOP must be above START, half-open): give e.g. {fix}")
    return slice(start, stop)


def parse_roi(text: str | None, what: str = "--roi") -> Box:
    """``"0:8,100:356,:"`` → three slices (z, y, x); missing trailing axes are whole."""
    if text is None or not str(text).strip():
        return (slice(None), slice(None), slice(None))
    items = [t for t in str(text).split(",")]
    if len(items) > 3:
        raise InputError(f"{what} {text!r} has {len(items)} ranges: give at most three, z0:z1,y0:y1,x0:x1")
    sl = [parse_range(t, what) for t in items]
    return tuple(sl + [slice(None)] * (3 - len(sl)))  # type: ignore[return-value]


def combine(z: str | None = None, roi: str | None = None) -> Box:
    """The ROI from ``--z`` and ``--roi`` together (``--z`` may not contradict the ROI's z range)."""
    r = parse_roi(roi)
    if z is not None and str(z).strip():
        zs = parse_range(z, "--z")
        if r[0] != slice(None) and r[0] != zs:
            raise InputError(f"--z {z} and --roi {roi} give different z ranges: give the z range once")
        r = (zs, r[1], r[2])
    return r


def resolve_roi(roi: Box | Sequence[slice] | None, shape: Sequence[int], what: str | None = None) -> Box:
    """Clip to concrete non-negative bounds for a volume of ``shape`` (Z, Y, X[, C]); reject empty ranges.

    Clipping follows numpy (``0:100`` on 8 slices is ``0:8``), with a ``warning:`` log line per clipped
    range. ``what`` names the option in messages; by default the options that can set that axis
    (``--z / --roi`` for z, ``--roi`` for y and x).
    """
    if roi is None:
        roi = (slice(None),) * 3
    out = []
    for axis, (s, n) in enumerate(zip(tuple(roi) + (slice(None),) * (3 - len(roi)), shape[:3])):
        name = "zyx"[axis]
        option = what or ("--z / --roi" if axis == 0 else "--roi")
        if s.step not in (None, 1):
            raise InputError(f"{option}: steps are not supported, got {s}")
        start, stop, _ = s.indices(int(n))
        if stop <= start:
            raise InputError(
                f"{option}: the {name} range {_fmt(s)} is empty for a volume of {name}-size {n}: "
                f"give START < STOP within 0..{n}"
            )
        if any(v is not None and not -int(n) <= v <= int(n) for v in (s.start, s.stop)):
            log.warning(
                "%s: the %s range %s reaches beyond the volume (%s-size %d): clipped to %d:%d",
                option,
                name,
                _fmt(s),
                name,
                n,
                start,
                stop,
            )
        out.append(slice(start, stop))
    return tuple(out)  # type: ignore[return-value]


def roi_shape(roi: Box) -> tuple[int, int, int]:
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
        if isinstance(value, str):  # every item must be a number: "64x", "64,", ",64" are typos, not 64
            items = [_integer(v) for v in re.split(r"[,xX]", value)]
        elif np.ndim(value) == 0:
            items = [_integer(value)] * n
        else:
            items = [_integer(v) for v in value]
    except (TypeError, ValueError, OverflowError):
        raise InputError(
            f"{what} {value!r} is not {'one or ' if n > 1 else ''}{n} integers: write e.g. {example}"
        ) from None
    if len(items) == 1:
        items = items * n
    if len(items) != n or min(items) < minimum:
        raise InputError(
            f"{what} {value!r} must be {'one or ' if n > 1 else ''}{n} integers >= {minimum}, e.g. {example}"
        )
    return tuple(items)


def parse_block(text: str | Sequence[int] | None, what: str = "--block") -> tuple[int, int, int] | None:
    """``"16,256,256"`` or a sequence → a (z, y, x) block shape of positive ints; ``None`` stays None."""
    return None if text is None else parse_sizes(text, 3, what, "16,256,256")  # type: ignore[return-value]


def parse_halo(text: str | Sequence[int] | None, what: str = "--halo") -> tuple[int, int, int] | None:
    """``"4,32,32"`` (or one value for all axes) → (z, y, x) halo widths >= 0 in voxels; ``None`` stays None."""
    return None if text is None else parse_sizes(text, 3, what, "4,32,32", minimum=0)  # type: ignore[return-value]


def _integer(v: Any) -> int:
    """A whole number from an int, an integral float or a string of digits; ValueError otherwise (no
    silent truncation of 6.5, no ``True`` as 1, no empty string)."""
    if isinstance(v, (bool, np.bool_)):
        raise ValueError(f"{v!r} is not an integer")
    if isinstance(v, str):
        if not re.fullmatch(r"\s*[+-]?\d+\s*", v):
            raise ValueError(f"{v!r} is not an integer")
        return int(v)
    if isinstance(v, (float, np.floating)) and not float(v).is_integer():
        raise ValueError(f"{v!r} is not an integer")
    return int(v)
