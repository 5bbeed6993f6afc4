"""Summaries of an :func:`~slicewise.metrics.evaluate.evaluate` result: slice means and the printed table.

Numbers are printed by :func:`slicewise.utils.table.num` (4 significant digits, ``1.4e-05`` rather than
``0.0000``); the JSON keeps full precision. A class not scored (``None``) prints as ``n/a``.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from slicewise.utils import text_table
from slicewise.utils.table import num

#: per-slice columns shown by :func:`format_table`.
SLICE_COLUMNS = {
    "semantic": ("mean_dice", "mean_iou", "foreground_dice"),
    "instance": ("are", "voi_split", "voi_merge", "ap50", "ap", "seg_accuracy"),
}


def mean_rows(rows: list[dict[str, Any]]) -> dict[str, float | None]:
    """Mean over slices of every numeric entry (nested class dicts flattened as ``dice[c]``).

    A class absent from a slice's scores (classes inferred per slice), or not scored there (``None``: a
    listed class in neither of the slice's maps), is averaged over the slices that score it; ``None``
    when no slice does.
    """
    flat = [flatten(r) for r in rows]
    keys = [k for k in dict.fromkeys(k for f in flat for k in f) if k != "z"]
    means = {k: [f[k] for f in flat if f.get(k) is not None] for k in keys}
    return {k: float(np.mean(v)) if v else None for k, v in means.items()}


def flatten(d: dict[str, Any], names: dict[str, str] | None = None) -> dict[str, float | None]:
    """Numbers of a result, nested class dicts as ``dice[c]`` (``dice[name]`` with ``names``: class id → name);
    ``None`` (a class not scored) is kept."""
    out: dict[str, float | None] = {}
    names = names or {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update({f"{k}[{names.get(str(c), c)}]": None if x is None else float(x) for c, x in v.items()})
        elif v is None and k.startswith("mean_"):
            out[k] = None
        elif isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
            out[k] = v
    return out


def format_table(result: dict[str, Any]) -> str:
    """A plain-text table of an :func:`evaluate` result: volume values (and slice means), then per-slice rows."""
    vol = flatten(result["volume"], result.get("class_names"))
    mean = result.get("slice_mean")
    header = ["metric", "volume"] + (["slice mean"] if mean is not None else [])
    if mean is not None and result.get("class_names"):
        names = result["class_names"]
        mean = {
            re.sub(r"\[(\d+)\]$", lambda m: f"[{names[m[1]]}]" if m[1] in names else m[0], k): v
            for k, v in mean.items()
        }
    rows = [[k, num(v)] + ([num(mean[k]) if k in mean else "-"] if mean is not None else []) for k, v in vol.items()]
    lines = text_table([header, *rows])
    if "per_slice" in result:
        cols = [c for c in SLICE_COLUMNS[result["kind"]] if c in vol]
        lines += [
            "",
            *text_table([["z", *cols], *[[str(r["z"]), *[num(r[c]) for c in cols]] for r in result["per_slice"]]]),
        ]
    return "\n".join(lines)
