"""Matplotlib for report figures: the headless Agg backend, one style, PNG + SVG written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slicewise.utils.atomic import atomic_file

STYLE: dict[str, Any] = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "figure.dpi": 100,
    "svg.fonttype": "none",
}
"""The one figure style of every report (matplotlib rcParams; SVG text stays editable text)."""


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (no display needed), with :data:`STYLE` applied."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    plt.rcParams.update(STYLE)
    return plt


def save_figure(fig: Any, path: str | Path, dpi: int = 100, svg: bool = True) -> str:
    """Write ``fig`` as a PNG (tight bounding box) and, with ``svg``, the same figure as an SVG next to it
    (``name.svg``, vector, for a paper), each through :func:`~slicewise.utils.atomic.atomic_file`; close it;
    return the PNG's name."""
    path = Path(path)
    with atomic_file(path, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png", bbox_inches="tight")
    if svg:
        with atomic_file(path.with_suffix(".svg"), overwrite=True) as tmp:
            fig.savefig(tmp, format="svg", bbox_inches="tight")
    pyplot().close(fig)
    return path.name
