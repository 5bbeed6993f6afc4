"""Matplotlib for report figures: the headless Agg backend, PNGs written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slicewise.utils.atomic import atomic_path


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path, dpi: int = 100) -> str:
    """Write ``fig`` as a PNG (tight bounding box) through :func:`atomic_path`, close it, return the file name."""
    with atomic_path(path, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png", bbox_inches="tight")
    pyplot().close(fig)
    return Path(path).name
