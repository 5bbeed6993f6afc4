"""Gain curves: the paired difference ``level − baseline`` of a comparison against a numeric stratum
(e.g. the gain of domain pretraining over ImageNet against the labelled training fraction), with its
confidence interval, and one generated sentence saying where the difference is significant.

Input is the statistics table of :func:`slicewise.studies.stats.study_statistics` (one row per
comparison × stratum × level: ``mean_diff``, ``diff_low``/``diff_high``, ``t_p_holm``, ``t_reject``,
``n``); nothing is recomputed here. A comparison gets a gain curve when one of its strata is numeric
(the x axis); other strata, if any, split the curve into panels.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from slicewise.studies.labels import label
from slicewise.utils.figures import pyplot, save_figure
from slicewise.utils.table import num

MAX_PANELS = 12


def numeric_stratum(rows: pd.DataFrame) -> str | None:
    """The first stratum column of a comparison's rows whose values are all numbers, else None."""
    strata = [s for s in str(rows["strata"].iloc[0] or "").split(",") if s] if len(rows) else []
    for s in strata:
        if s in rows and pd.to_numeric(rows[s].astype(str), errors="coerce").notna().all():
            return s
    return None


def _panels(rows: pd.DataFrame, x: str) -> list[tuple[str, pd.DataFrame]]:
    """(panel title, rows sorted by x) for every combination of the non-x strata."""
    strata = [s for s in str(rows["strata"].iloc[0] or "").split(",") if s and s != x]
    rows = rows.assign(_x=pd.to_numeric(rows[x].astype(str))).sort_values("_x")
    if not strata:
        return [("", rows)]
    out = []
    for key, sub in rows.groupby(strata, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        out.append((", ".join(f"{label(c)} = {v}" for c, v in zip(strata, key)), sub))
    return out[:MAX_PANELS]


def significance_sentence(rows: pd.DataFrame, x: str, alpha: float = 0.05, min_n: int = 3) -> str:
    """One sentence per level (and panel) of a comparison: at which values of ``x`` the Holm-corrected
    paired t-test finds the difference significant, and from where on it does not.

    E.g. "ssl-imagenet − imagenet: significant gain (Holm p < 0.05) at training fraction 0.05 and 0.1;
    not significant from 0.25 on (mean +0.004 [−0.01, 0.02] at 0.25)."
    """
    parts = []
    for title, panel in _panels(rows, x):
        for level, sub in panel.groupby("level", sort=False):
            base = str(sub["baseline"].iloc[0])
            higher = bool(sub["higher_is_better"].iloc[0]) if "higher_is_better" in sub else True
            head = f"{level} − {base}" + (f" ({title})" if title else "")
            tested = sub[pd.to_numeric(sub["n"], errors="coerce").fillna(0) >= min_n]
            tested = tested[tested["t_p_holm"].notna()]
            if tested.empty:
                parts.append(f"{head}: too few pairs to test at any {label(x)} (n < {min_n}).")
                continue
            sig = tested["t_p_holm"].to_numpy(float) < alpha
            xs = [num(v) for v in tested["_x"]]
            gain = tested["mean_diff"].to_numpy(float)
            better = [(g > 0) == higher for g in gain]
            if not sig.any():
                parts.append(
                    f"{head}: not significant at any tested {label(x)} ({', '.join(xs)}; Holm p ≥ {num(alpha)})."
                )
                continue
            word = {True: "gain", False: "loss"}
            sig_x = [f"{xv} ({word[b]})" for xv, s, b in zip(xs, sig, better) if s]
            text = f"{head}: significant (Holm p < {num(alpha)}) at {label(x)} {', '.join(sig_x)}"
            last = int(np.flatnonzero(sig)[-1])
            if last < len(sig) - 1:
                r = tested.iloc[last + 1]
                verdict = r.get("verdict")
                text += (
                    f"; not significant from {xs[last + 1]} on (mean {num(r['mean_diff'])} "
                    f"[{num(r['diff_low'])}, {num(r['diff_high'])}] there"
                    + (f", {verdict}" if isinstance(verdict, str) and verdict else "")
                    + ")"
                )
                if sig[last + 1 :].any():
                    text += ", except at " + ", ".join(xv for xv, s in zip(xs[last + 1 :], sig[last + 1 :]) if s)
            elif not sig.all():
                text += "; not at " + ", ".join(xv for xv, s in zip(xs, sig) if not s)
            parts.append(text + ".")
    return " ".join(parts)


def gain_figure(rows: pd.DataFrame, x: str, title: str, path: Path, alpha: float = 0.05, min_n: int = 3) -> None:
    """Mean difference (level − baseline) ± CI against ``x``, one line per level, a zero line; filled
    markers where the Holm-corrected t-test rejects, hollow ones elsewhere; no bars below ``min_n``."""
    plt = pyplot()
    panels = _panels(rows, x)
    ncol = min(len(panels), 4)
    nrow = math.ceil(len(panels) / ncol)
    fig, axs = plt.subplots(nrow, ncol, figsize=(4 * ncol, 3.3 * nrow), squeeze=False)
    metric = str(rows["metric"].iloc[0])
    base = str(rows["baseline"].iloc[0])
    for ax, (ptitle, sub) in zip(axs.flat, panels):
        ax.axhline(0.0, color="0.5", lw=0.8)
        for i, (level, ls) in enumerate(sub.groupby("level", sort=False)):
            n = pd.to_numeric(ls["n"], errors="coerce").fillna(0).to_numpy()
            m = ls["mean_diff"].to_numpy(float)
            err = np.nan_to_num(
                np.abs(np.array([m - ls["diff_low"].to_numpy(float), ls["diff_high"].to_numpy(float) - m]))
            )
            err[:, n < min_n] = 0.0
            color = f"C{i + 1}"
            ax.errorbar(
                ls["_x"], m, yerr=err if err.any() else None, color=color, marker="", capsize=3, label=str(level)
            )
            sig = (ls["t_p_holm"].to_numpy(float) < alpha) & (n >= min_n)
            ax.scatter(ls["_x"][sig], m[sig], color=color, zorder=3)
            ax.scatter(ls["_x"][~sig], m[~sig], facecolors="white", edgecolors=color, zorder=3)
        ax.set_xlabel(label(x))
        ax.set_ylabel(f"Δ {label(metric)} vs {base}")
        ax.set_title(ptitle, fontsize=9)
        ax.legend(title="filled: Holm p < " + num(alpha), fontsize=8, title_fontsize=8)
    for ax in list(axs.flat)[len(panels) :]:
        ax.axis("off")
    fig.suptitle(f"gain over {base}: {title}", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=90)
