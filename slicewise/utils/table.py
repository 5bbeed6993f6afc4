"""Plain-text tables for the command-line summaries, and the one number format of every table and legend."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from slicewise.utils.atomic import atomic_file

SIG_DIGITS = 4
"""Significant digits of every number shown in a table, legend or report page (JSON keeps 6)."""


def num(v: Any, digits: int = SIG_DIGITS) -> str:
    """A number as tables, legends and reports show it: ``digits`` (4) significant digits.

    Integers print whole; floats with ``{:.4g}`` (``0.5523``, ``123.5``, ``1.4e-05``: a small value is
    never rounded to ``0.0000``; exact zero is ``0``; 10^4 to 10^7 as whole numbers, ``12346``); ``-0.0`` prints
    as ``0``; NaN / None as ``n/a``; ±inf as ``inf`` / ``-inf``; booleans as ``True`` / ``False``; anything
    else via ``str``.
    """
    if v is None:
        return "n/a"
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if math.isnan(f):
            return "n/a"
        if math.isinf(f):
            return "inf" if f > 0 else "-inf"
        if 10**digits <= abs(f) < 1e7:
            return f"{f:.0f}"
        return f"{f + 0.0:.{digits}g}"
    return str(v)


def write_csv(path: Any, rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Write ``rows`` (dicts) as a CSV file through :func:`slicewise.utils.atomic.atomic_file`; full precision
    (``repr`` of floats; NaN / None as an empty cell). ``columns`` default: the keys in first-seen order.
    Returns the file name."""
    cols = list(columns) if columns is not None else list(dict.fromkeys(k for r in rows for k in r))

    def cell(v: Any) -> Any:
        if v is None or (isinstance(v, (float, np.floating)) and math.isnan(float(v))):
            return ""
        if isinstance(v, (np.integer, np.floating, np.bool_)):
            return v.item()
        return v

    with atomic_file(path, overwrite=True) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(cols)
        writer.writerows([[cell(r.get(c)) for c in cols] for r in rows])
    return Path(path).name


def text_table(rows: Sequence[Sequence[str]], align: str | None = None) -> list[str]:
    """Rows of string cells as lines with aligned columns two spaces apart.

    ``align``: one letter per column, ``l`` (left) or ``r`` (right); default the first column
    left and the rest right (labels, then numbers). Trailing spaces are stripped.
    """
    if not rows:
        return []
    n = len(rows[0])
    align = align or "l" + "r" * (n - 1)
    widths = [max(len(r[i]) for r in rows) for i in range(n)]
    return [
        "  ".join(c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(r, widths, align)).rstrip() for r in rows
    ]
