"""Plain-text tables for the command-line summaries."""

from __future__ import annotations

from collections.abc import Sequence


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
    return ["  ".join(c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(r, widths, align)).rstrip() for r in rows]
