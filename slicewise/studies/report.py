"""Study report: figures (PNG + SVG), tables (CSV) and one HTML page per study, in the audit reports' style.

Figures: one per comparison (mean ± CI of baseline and each level; a line over the stratum when it
is numeric, e.g. training fraction; bars otherwise) and one per ``figures:`` profile of the study
file (e.g. slice shares per slice, Hellinger distance per layer). Axes and columns carry human labels
(:mod:`slicewise.studies.labels`: ``dice`` → "Dice", ``ma`` → "mirror asymmetry (MA)", ``channel_init`` →
"first-layer strategy"). Numbers print with :func:`slicewise.utils.table.num`.

Confidence intervals respect the metric's range (:func:`slicewise.studies.stats.metric_range`: the
t interval clipped to it). Below ``stats.min_n`` pairs / values (default 3) no interval is drawn: the
point is plotted alone and the panel says ``n = 2 < 3: too few to test``; the table shows
``n/a (n < 3)`` for tests and effect sizes, and Cohen's d ``n/a (sd ≈ 0)`` when the differences do not
vary. The page uses the shared stylesheet (``slicewise/diagnostics/templates/style.css``) and links
``comparisons.csv``, ``summary.csv`` and a CSV per profile figure.

The page also shows the grid of this run (only its levels), the provenance (environment, training
settings, data section and identity: :func:`slicewise.studies.aggregate.provenance`), every cell's status
with its reason and its training curves (:func:`_curves_figures`), raw and Holm p side by side with the
adjusted interval, the Wilcoxon minimum p, the verdict (different / equivalent / no evidence) and the
detectable difference, and, where the study records them, the layer distances (raw, null, corrected,
rank: :func:`layer_distance_table`). Every bar carries the per-seed values (:func:`seed_points`; failed
cells as red crosses); levels, layers, masks and fractions in natural order (:mod:`slicewise.studies.order`);
panels of a figure share their y axis; legends sit outside the axes and notes in the panel titles.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from slicewise.data.io.outputs import atomic_path
from slicewise.diagnostics.report import template_env
from slicewise.studies.gain import gain_figure, numeric_stratum, significance_sentence
from slicewise.studies.labels import label
from slicewise.studies.order import natural_key, natural_sorted
from slicewise.studies.schema import Figure, Study
from slicewise.studies.stats import Comparison, as_key, clip_ci, mean_ci, metric_range
from slicewise.studies.status import LOSS, VAL_METRIC, Summary, training_log
from slicewise.utils.environment import environment_text
from slicewise.utils.figures import pyplot, save_figure
from slicewise.utils.table import num, write_csv

MAX_PANELS = 12

COLUMNS: dict[str, str] = {
    "comparison": "comparison",
    "strata_values": "stratum",
    "baseline": "baseline",
    "level": "level",
    "n": "n",
    "mean_baseline": "baseline mean",
    "mean_level": "level mean",
    "mean_diff": "difference [CI, adjustment below]",
    "p_raw": "t-test p (raw)",
    "p_holm": "t-test p (Holm)",
    "w_p": "Wilcoxon p (raw)",
    "w_p_holm": "Wilcoxon p (Holm)",
    "w_p_min": "Wilcoxon: smallest p at this n",
    "verdict": "verdict",
    "tost": "TOST p (Holm), margin",
    "mdd": "detectable difference (80% power)",
    "cohen_d": "Cohen's d",
    "rank_biserial": "rank-biserial r",
    "note": "notes",
}
"""Columns of the comparisons table on the page (all columns are in stats.csv / comparisons.csv)."""

TEXT_COLUMNS = ("comparison", "strata_values", "verdict", "note")
"""Columns of the comparisons table that hold text (left-aligned)."""


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")[:80] or "figure"


def _numeric(values: pd.Series) -> bool:
    try:
        pd.to_numeric(values.astype(str))
        return True
    except (ValueError, TypeError):
        return False


def _strata_text(row: pd.Series) -> str:
    names = [s for s in str(row.get("strata", "") or "").split(",") if s]
    return ", ".join(f"{label(s)} = {as_key(row[s])}" for s in names)


def _too_few(n: Any, min_n: int) -> bool:
    return not isinstance(n, (int, float, np.integer, np.floating)) or math.isnan(float(n)) or int(n) < min_n


def ci_errors(mean: Any, low: Any, high: Any, n: Any, min_n: int) -> np.ndarray:
    """Error bar lengths [[below], [above]]; zero where n < min_n or a bound is NaN (no bar drawn)."""
    m, lo, hi = (np.atleast_1d(np.asarray(v, float)) for v in (mean, low, high))
    ns = np.atleast_1d(np.asarray(n, float))
    err = np.nan_to_num(np.abs(np.array([m - lo, hi - m])))
    err[:, np.nan_to_num(ns) < min_n] = 0.0
    return err


def _bars(err: np.ndarray) -> np.ndarray | None:
    """``err`` for matplotlib, or None when every bar has zero length (no caps drawn for nothing)."""
    return err if err.any() else None


PointsFn = Callable[[dict[str, Any]], dict[str, tuple[list[float], list[float]]]]
"""filters (column → value) → {level: (values of ok cells, values of failed cells)} per pairing unit."""


def seed_points(table: pd.DataFrame, comp: Comparison) -> PointsFn:
    """Per-seed (pairing-unit) values of a comparison's metric, for drawing on its bars: rows of ``table``
    with the comparison's metric and ``where``, averaged per pairing unit and level like the tests do;
    values of cells whose status is not ``ok`` are returned separately (drawn as crosses, not tested)."""
    sub = table[table["metric"] == comp.metric] if "metric" in table else table.iloc[0:0]
    for col, val in comp.where.items():
        if col in sub:
            sub = sub[sub[col].map(as_key) == as_key(val)]

    def points(filters: dict[str, Any]) -> dict[str, tuple[list[float], list[float]]]:
        rows = sub
        for col, val in filters.items():
            if col in rows:
                rows = rows[rows[col].map(as_key) == as_key(val)]
        out: dict[str, tuple[list[float], list[float]]] = {}
        if rows.empty or comp.axis not in rows:
            return out
        keys = [k for k in comp.pair_by if k in rows]
        status = rows["status"] if "status" in rows else pd.Series("ok", index=rows.index)
        frame = rows.assign(_level=rows[comp.axis].map(as_key), _ok=status.fillna("ok") == "ok")
        for (level, ok), g in frame.groupby(["_level", "_ok"], sort=False):
            vals = (g.groupby(keys)["value"].mean() if keys else g["value"]).dropna().tolist()
            pair = out.setdefault(str(level), ([], []))
            (pair[0] if ok else pair[1]).extend(vals)
        return out

    return points


def _draw_points(ax: Any, x: float, values: tuple[list[float], list[float]], width: float = 0.5) -> None:
    """Per-seed values at ``x`` (jittered): dots for ok cells, red crosses for failed ones."""
    for vals, style in (
        (values[0], {"marker": "o", "color": "k", "s": 12}),
        (values[1], {"marker": "x", "color": "C3", "s": 28}),
    ):
        if vals:
            jitter = np.linspace(-width / 4, width / 4, len(vals)) if len(vals) > 1 else np.zeros(1)
            ax.scatter(x + jitter, vals, zorder=3, linewidths=1, **style)


def _legend_outside(ax: Any, **kwargs: Any) -> None:
    """The legend to the right of the axes, never over the data."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, **kwargs)


def _comparison_figure(
    rows: pd.DataFrame, title: str, path: Path, min_n: int, points: PointsFn | None = None, order: Sequence[Any] = ()
) -> None:
    """Mean ± CI per level with every seed's value on it: line over a numeric stratum, else bars per stratum;
    panels share one y axis; no bars below ``min_n`` (said in the panel title, never over the data); levels in
    natural order (:mod:`slicewise.studies.order`); failed cells as red crosses."""
    plt = pyplot()
    strata = [s for s in str(rows["strata"].iloc[0] or "").split(",") if s]
    xcol = next((s for s in strata if _numeric(rows[s])), None)
    panel_cols = [s for s in strata if s != xcol]
    panels = _comparison_panels(rows, panel_cols)
    ncol = min(len(panels), 4)
    nrow = math.ceil(len(panels) / ncol)
    fig, axs = plt.subplots(
        nrow, ncol, figsize=(4 * ncol + (1.4 if xcol else 0), 3.3 * nrow), squeeze=False, sharey=True
    )
    metric = str(rows["metric"].iloc[0])
    axis = str(rows["axis"].iloc[0])
    for ax, (key, sub) in zip(axs.flat, panels):
        filters = dict(zip(panel_cols, key))
        small = int(sub["n"].min()) if len(sub) else 0
        if xcol is not None:
            _line_panel(ax, sub, xcol, filters, min_n, points, order)
            _legend_outside(ax, title=label(axis))
        else:
            _bar_panel(ax, sub, filters, min_n, points, order)
            ax.set_xlabel(label(axis))
        _metric_axis(ax, metric)
        head = ", ".join(f"{label(c)} = {v}" for c, v in zip(panel_cols, key))
        if small < min_n:
            head = (head + "\n" if head else "") + f"n = {small} < {min_n}: too few to test, no intervals"
        ax.set_title(head, fontsize=8)
    for ax in list(axs.flat)[len(panels) :]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=90)


def _comparison_panels(rows: pd.DataFrame, panel_cols: list[str]) -> list[tuple[tuple[Any, ...], pd.DataFrame]]:
    """(values of ``panel_cols``, rows) per panel of a comparison figure, in natural order, at most
    :data:`MAX_PANELS`."""
    if not panel_cols:
        return [((), rows)]
    panels = [(key if isinstance(key, tuple) else (key,), sub) for key, sub in rows.groupby(panel_cols, sort=False)]
    panels.sort(key=lambda kv: tuple(natural_key(v) for v in kv[0]))
    return panels[:MAX_PANELS]


def _line_panel(
    ax: Any,
    sub: pd.DataFrame,
    xcol: str,
    filters: dict[str, Any],
    min_n: int,
    points: PointsFn | None,
    order: Sequence[Any],
) -> None:
    """One panel of a comparison over a numeric stratum ``xcol``: baseline and each level as a line ± CI."""
    base = str(sub["baseline"].iloc[0])
    sub = sub.assign(_x=pd.to_numeric(sub[xcol].astype(str))).sort_values("_x")
    b = sub.groupby("_x")[["mean_baseline", "mean_baseline_low", "mean_baseline_high", "n"]].first()
    ax.errorbar(
        b.index,
        b["mean_baseline"],
        yerr=_bars(ci_errors(b["mean_baseline"], b["mean_baseline_low"], b["mean_baseline_high"], b["n"], min_n)),
        marker="o",
        capsize=3,
        label=base,
    )
    for level in natural_sorted(sub["level"], order):
        ls = sub[sub["level"] == level]
        ax.errorbar(
            ls["_x"],
            ls["mean_level"],
            yerr=_bars(ci_errors(ls["mean_level"], ls["mean_level_low"], ls["mean_level_high"], ls["n"], min_n)),
            marker="o",
            capsize=3,
            label=str(level),
        )
    if points is not None:
        for xv in b.index:
            xraw = sub.loc[sub["_x"] == xv, xcol].iloc[0]
            for vals in points({**filters, xcol: xraw}).values():
                _draw_points(ax, float(xv), vals, width=0.02 * (max(b.index) - min(b.index) or 1))
    ax.set_xlabel(label(xcol))


def _bar_panel(
    ax: Any, sub: pd.DataFrame, filters: dict[str, Any], min_n: int, points: PointsFn | None, order: Sequence[Any]
) -> None:
    """One panel of a comparison without a numeric stratum: a bar ± CI for the baseline and each level (green
    where the paired t-test rejects)."""
    base = str(sub["baseline"].iloc[0])
    levels = natural_sorted(map(str, sub["level"]), order)
    sub = sub.set_index(sub["level"].astype(str)).loc[levels]
    names = [base, *levels]
    means = [sub["mean_baseline"].iloc[0], *sub["mean_level"]]
    lows = [sub["mean_baseline_low"].iloc[0], *sub["mean_level_low"]]
    highs = [sub["mean_baseline_high"].iloc[0], *sub["mean_level_high"]]
    ns = [sub["n"].iloc[0], *sub["n"]]
    colors = ["0.6"] + ["C0" if not r else "C2" for r in sub.get("t_reject", [False] * len(sub))]
    xs = np.arange(len(names))
    ax.bar(xs, means, yerr=_bars(ci_errors(means, lows, highs, ns, min_n)), capsize=3, color=colors, alpha=0.8)
    if points is not None:
        pts = points(filters)
        for x, name in zip(xs, names):
            _draw_points(ax, float(x), pts.get(name, ([], [])))
    ax.set_xticks(xs, names, rotation=30)


def _metric_axis(ax: Any, metric: str) -> None:
    """The y axis of ``metric``: its label, limited to the metric's range where that is finite."""
    lo, hi = metric_range(metric)
    if math.isfinite(lo) and math.isfinite(hi):
        ax.set_ylim(lo, hi)
    elif math.isfinite(lo):
        ax.set_ylim(bottom=lo)
    ax.set_ylabel(label(metric))


def _gain(rows: pd.DataFrame, title: str, path: Path, alpha: float, min_n: int) -> dict[str, str]:
    """For a comparison over a numeric stratum (e.g. training fraction): its gain curve (difference ± CI,
    :func:`slicewise.studies.gain.gain_figure`) and the sentence saying where it is significant; else nothing."""
    x = numeric_stratum(rows)
    if x is None:
        return {}
    gain_figure(rows, x, title, path, alpha, min_n)
    return {
        "gain_src": f"figures/{path.name}",
        "gain_svg": f"figures/{path.with_suffix('.svg').name}",
        "sentence": significance_sentence(rows, x, alpha, min_n),
    }


def profile_table(table: pd.DataFrame, fig: Figure, confidence: float = 0.95) -> pd.DataFrame:
    """Mean ± CI of ``fig.metric`` per (facet, hue, x) over the remaining rows (seeds, images) of ``ok`` cells;
    CIs in the metric's range; ``values`` holds the rows' values (the per-seed points), natural order."""
    keys = [k for k in (fig.facet, fig.hue, fig.x) if k]
    if table.empty or any(k not in table.columns for k in [*keys, *fig.where]):
        return pd.DataFrame()
    sub = table[table["metric"] == fig.metric]
    if "status" in sub:
        sub = sub[sub["status"].fillna("ok") == "ok"]
    for col, val in fig.where.items():
        sub = sub[sub[col].map(as_key) == as_key(val)]
    rows = []
    for key, g in sub.groupby(keys, sort=False):
        m, lo, hi = clip_ci(*mean_ci(g["value"].to_numpy(), confidence), metric_range(fig.metric))
        rows.append(
            {
                **dict(zip(keys, key if isinstance(key, tuple) else (key,))),
                "mean": m,
                "low": lo,
                "high": hi,
                "n": len(g),
                "values": g["value"].tolist(),
            }
        )
    rows.sort(key=lambda r: tuple(natural_key(r[k]) for k in keys))
    return pd.DataFrame(rows)


def slice_offsets(xs: Sequence[Any]) -> list[str]:
    """Input-slice indices 0..k−1 as z-offsets from the centre slice (−1, +0, +1 for k = 3), as the demo and
    the audits label them."""
    r = (len(xs) - 1) // 2
    return [f"{int(float(x)) - r:+d}" for x in xs]


def _profile_figure(prof: pd.DataFrame, fig: Figure, path: Path, min_n: int, order: dict[str, Sequence[Any]]) -> None:
    """Mean ± CI per x, a line per hue, a panel per facet (one shared y axis), every seed's value as a dot;
    slices labelled by z-offset; legend outside the axes; notes in the panel titles."""
    plt = pyplot()
    facet_vals = natural_sorted(prof[fig.facet], order.get(fig.facet or "", ())) if fig.facet else [""]
    facet_vals = facet_vals[:MAX_PANELS]
    f, axs = plt.subplots(1, len(facet_vals), figsize=(4.5 * len(facet_vals) + 1.4, 3.6), squeeze=False, sharey=True)
    for ax, fval in zip(axs.flat, facet_vals):
        sub = prof[prof[fig.facet] == fval] if fig.facet else prof
        _profile_panel(ax, sub, fig, min_n, order)
        head = f"{label(fig.facet)} = {fval}" if fig.facet else ""
        if len(sub) and int(sub["n"].min()) < min_n:
            head = (head + "\n" if head else "") + f"n = {int(sub['n'].min())} < {min_n}: no intervals"
        ax.set_title(head, fontsize=8)
    if fig.hue:
        _legend_outside(axs.flat[len(facet_vals) - 1], title=label(fig.hue))
    f.suptitle(fig.title or f"{label(fig.metric)} per {label(fig.x)}", fontsize=10)
    f.tight_layout()
    save_figure(f, path, dpi=90)


def _profile_panel(ax: Any, sub: pd.DataFrame, fig: Figure, min_n: int, order: dict[str, Sequence[Any]]) -> None:
    """One facet of a profile figure: a line ± CI per hue level over the x values, the values as dots."""
    hue_vals = natural_sorted(sub[fig.hue], order.get(fig.hue or "", ())) if fig.hue else [""]
    xs = natural_sorted(sub[fig.x], order.get(fig.x, ()))
    pos = {x: i for i, x in enumerate(xs)}
    for j, hval in enumerate(hue_vals):
        hs = sub[sub[fig.hue] == hval] if fig.hue else sub
        offset = (j - (len(hue_vals) - 1) / 2) * 0.08
        xp = np.array([pos[x] for x in hs[fig.x]]) + offset
        line = ax.errorbar(
            xp,
            hs["mean"],
            yerr=_bars(ci_errors(hs["mean"], hs["low"], hs["high"], hs["n"], min_n)),
            marker="o",
            capsize=3,
            label=str(hval),
        )
        for x0, vals in zip(xp, hs["values"]):
            ax.scatter(np.full(len(vals), x0), vals, s=9, color=line[0].get_color(), alpha=0.6, zorder=3)
    ticks = slice_offsets(xs) if fig.x == "slice" and _numeric(pd.Series(xs)) else [as_key(x) for x in xs]
    many = len(xs) > 6
    ax.set_xticks(range(len(xs)), ticks, rotation=30 if many else 0, ha="right" if many else "center")
    ax.set_xlabel("slice z-offset" if fig.x == "slice" else label(fig.x))
    ax.set_ylabel(label(fig.metric))


LAYER_METRICS = ("hellinger_raw", "hellinger_null", "hellinger")


def layer_distance_table(table: pd.DataFrame, pair: str = "seed") -> pd.DataFrame:
    """Per layer (and shift, and every other non-``pair`` axis): values per channel of each histogram (where
    recorded), mean raw distance, null baseline and bias-corrected distance over the ``ok`` cells, and the rank
    of the corrected one within its group
    (1 = most susceptible); natural layer order. Empty when the study records no layer distances."""
    if table.empty or "layer" not in table or not set(LAYER_METRICS) <= set(table["metric"].dropna()):
        return pd.DataFrame()
    sub = table[table["metric"].isin((*LAYER_METRICS, "values_per_channel"))]
    if "status" in sub:
        sub = sub[sub["status"].fillna("ok") == "ok"]
    keys = [
        c for c in sub.columns if c not in ("cell", "index", "value", "metric", "status", pair) and sub[c].notna().any()
    ]
    wide = sub.groupby([*keys, "metric"], dropna=False)["value"].mean().unstack("metric").reset_index()
    wide = wide.rename(columns={"hellinger_raw": "raw", "hellinger_null": "null", "hellinger": "corrected"})
    group = [k for k in keys if k != "layer"]
    wide["rank"] = (
        wide.groupby(group, dropna=False)["corrected"].rank(ascending=False, method="min")
        if group
        else wide["corrected"].rank(ascending=False, method="min")
    ).astype(int)
    wide = wide.assign(_k=[tuple(natural_key(r[k]) for k in (*group, "layer")) for _, r in wide.iterrows()])
    counts = ["values_per_channel"] if "values_per_channel" in wide else []
    return wide.sort_values("_k").drop(columns="_k")[[*keys, *counts, "raw", "null", "corrected", "rank"]]


def summary_table(
    table: pd.DataFrame,
    axes: list[str],
    confidence: float = 0.95,
    pair: str = "seed",
    order: dict[str, Sequence[Any]] | None = None,
) -> pd.DataFrame:
    """Mean ± CI (in the metric's range) and n of every metric per combination of the non-``pair`` axes and labels,
    over the ``ok`` cells, in natural order (``order``: the grid's levels per axis)."""
    if "status" in table:  # failed cells are listed in the cells table, not averaged in
        table = table[table["status"].fillna("ok") == "ok"].drop(columns="status")
    if table.empty:
        return pd.DataFrame()
    keys = [c for c in table.columns if c not in ("cell", "index", "value", pair) and table[c].notna().any()]
    rows = []
    for key, g in table.groupby(keys, sort=False, dropna=False):
        rec = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        m, lo, hi = clip_ci(*mean_ci(g["value"].to_numpy(), confidence), metric_range(str(rec.get("metric", ""))))
        rows.append({**rec, "mean": m, "ci_low": lo, "ci_high": hi, "n": len(g)})
    rows.sort(key=lambda r: tuple(natural_key(r[k], order.get(k, ()) if order else ()) for k in keys))
    return pd.DataFrame(rows)


def _cell(v: Any) -> str:
    if isinstance(v, (float, np.floating, int, np.integer)) and not isinstance(v, bool):
        return num(v)
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return html.escape(str(v))


def _ci_text(m: Any, lo: Any, hi: Any, n: Any, min_n: int) -> str:
    if _too_few(n, min_n):
        return f"{num(m)}"
    return f"{num(m)} [{num(lo)}, {num(hi)}]"


def comparisons_rows(stats: pd.DataFrame, min_n: int) -> list[dict[str, str]]:
    """The comparisons table as shown: human columns (:data:`COLUMNS`), 4 significant digits, CIs only from
    ``min_n`` pairs (the adjusted interval where stats.csv has one), raw and Holm p side by side, the smallest
    p the Wilcoxon test can reach at its n, the verdict (different / equivalent within ±m / no evidence either
    way), the detectable difference, ``n/a (n < min_n)`` for tests and effect sizes below ``min_n``,
    ``n/a (sd ≈ 0)`` for a d whose differences do not vary."""
    out = []
    for _, r in stats.iterrows():
        n = r.get("n")
        few = _too_few(n, min_n)
        why = f"n/a (n < {min_n})"
        adj = "diff_low_adj" in r and not pd.isna(r.get("diff_low_adj"))
        lo, hi = (r.get("diff_low_adj"), r.get("diff_high_adj")) if adj else (r.get("diff_low"), r.get("diff_high"))
        row = {
            "comparison": str(r["comparison"]),
            "strata_values": _strata_text(r),
            "baseline": str(r["baseline"]),
            "level": str(r["level"]),
            "n": num(n),
            "mean_baseline": _ci_text(
                r["mean_baseline"], r.get("mean_baseline_low"), r.get("mean_baseline_high"), n, min_n
            ),
            "mean_level": _ci_text(r["mean_level"], r.get("mean_level_low"), r.get("mean_level_high"), n, min_n),
            "mean_diff": _ci_text(r["mean_diff"], lo, hi, n, min_n),
            "p_raw": why if few else num(r.get("p_raw", r.get("t_p"))),
            "p_holm": why if few else num(r.get("p_holm", r.get("t_p_holm"))),
            "t_p_holm": why if few else num(r.get("t_p_holm")),
            "w_p": why if few else num(r.get("w_p")),
            "w_p_holm": why if few else num(r.get("w_p_holm")),
            "w_p_min": num(r.get("w_p_min")),
            "verdict": str(r.get("verdict") or ""),
            "tost": why if few else f"{num(r.get('tost_p_holm'))} (±{num(r.get('margin'))})",
            "mdd": why if few else num(r.get("mdd")),
            "cohen_d": why if few else ("n/a (sd ≈ 0)" if pd.isna(r.get("cohen_d")) else num(r.get("cohen_d"))),
            "rank_biserial": why if few else num(r.get("rank_biserial")),
            "note": str(r.get("note") or ""),
        }
        out.append(row)
    return out


def _html_rows(
    rows: list[dict[str, Any]],
    columns: dict[str, str],
    highlight: list[bool] | None = None,
    text_cols: tuple[str, ...] = (),
) -> str:
    if not rows:
        return "<p class='note'>(nothing yet)</p>"
    head = "".join(f"<th{' class=text' if c in text_cols else ''}>{html.escape(h)}</th>" for c, h in columns.items())
    body = []
    for i, row in enumerate(rows):
        cls = " class='sig'" if highlight is not None and highlight[i] else ""
        cells = "".join(f"<td{' class=text' if c in text_cols else ''}>{_cell(row.get(c))}</td>" for c in columns)
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<div class='table-wrap'><table><tr>{head}</tr>{''.join(body)}</table></div>"


def _curves_figures(out: Path, cells: pd.DataFrame, study: Study, figdir: Path) -> list[dict[str, str]]:
    """Training curves of every cell from its CSV logs: per combination of the non-seed axes one column,
    training loss (top) and validation Dice (bottom), a line per seed (dashed red: failed-to-learn); rows
    share their y axis. Four combinations per figure."""
    if cells.empty:
        return []
    axes = [a for a in study.grid if a != "seed"]
    logs = {r["cell"]: training_log(out / "cells" / str(r["cell"])) for _, r in cells.iterrows()}
    if all(log.empty for log in logs.values()):
        return []
    groups: dict[tuple[Any, ...], list[pd.Series]] = {}
    for _, r in cells.iterrows():
        groups.setdefault(tuple(as_key(r[a]) for a in axes), []).append(r)
    keys = sorted(groups, key=lambda k: tuple(natural_key(v, study.grid.get(a, ())) for a, v in zip(axes, k)))
    figs = []
    for start in range(0, len(keys), 4):
        path = figdir / f"curves-{start // 4:02d}.png"
        chunk = keys[start : start + 4]
        titles = [", ".join(f"{label(a)} = {v}" for a, v in zip(axes, k)) for k in chunk]
        _curves_figure([(t, groups[k]) for t, k in zip(titles, chunk)], logs, path)
        figs.append({"src": f"figures/{path.name}", "svg": f"figures/{path.with_suffix('.svg').name}"})
    return figs


def _curves_figure(columns: list[tuple[str, list[pd.Series]]], logs: dict[Any, pd.DataFrame], path: Path) -> None:
    """One figure of training curves: per (title, cells) a column, loss on top and validation Dice below."""
    plt = pyplot()
    fig, axs = plt.subplots(2, len(columns), figsize=(3.6 * len(columns) + 1.4, 5.4), squeeze=False, sharey="row")
    for j, (title, rows) in enumerate(columns):
        for r in rows:
            failed = r.get("status") not in ("ok", None)
            style = {"ls": "--", "color": "C3"} if failed else {}
            name = f"seed {r.get('seed', r['index'])}" + (f" ({r.get('status')})" if failed else "")
            log = logs[r["cell"]]
            for i, col in enumerate((LOSS, VAL_METRIC)):
                if col in log and log[col].notna().any():
                    pts = log[["step", col]].dropna()
                    axs[i, j].plot(pts["step"], pts[col], marker="." if len(pts) < 30 else None, label=name, **style)
        axs[0, j].set_title(title or "all cells", fontsize=8)
        axs[1, j].set_xlabel("optimizer step")
    axs[0, 0].set_ylabel("training loss")
    axs[1, 0].set_ylabel("validation Dice")
    if axs[0, -1].get_legend_handles_labels()[0]:
        _legend_outside(axs[0, -1])
    fig.suptitle("training curves per cell (from train/logs/*/metrics.csv)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=90)


def _short(v: Any) -> str:
    if isinstance(v, dict):
        return ", ".join(f"{k} {_short(x)}" for k, x in v.items()) or "defaults"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_short(x) for x in v) + "]"
    return "n/a" if v is None else str(v)


def provenance_rows(prov: dict[str, Any]) -> tuple[list[dict[str, str]], list[str]]:
    """(rows setting → value for the training settings of the study's cells, the distinct environments of
    the cells as one line each). A setting that differs between cells shows each value with its cells'
    count; where it follows a grid axis, the cells table shows it per cell."""
    cells = prov.get("cells", {})
    rows: list[dict[str, str]] = []
    settings: dict[str, dict[str, int]] = {}
    for rec in cells.values():
        for k, v in (rec.get("training") or {}).items():
            text = _short(v)
            settings.setdefault(k, {})
            settings[k][text] = settings[k].get(text, 0) + 1
    for k, vals in settings.items():
        rows.append(
            {
                "setting": k,
                "value": next(iter(vals)) if len(vals) == 1 else "; ".join(f"{v} ({c} cells)" for v, c in vals.items()),
            }
        )
    data = prov.get("data") or {}
    for k in ("crop", "train_z", "test_z", "train_phantom", "test_phantom", "tile", "scale"):
        if k in data:
            rows.append({"setting": f"data.{k}", "value": _short(data[k])})
    for role, ident in (prov.get("data_identity") or {}).items():
        rows.append(
            {
                "setting": f"data identity: {role}",
                "value": _short(
                    {
                        k: ident[k]
                        for k in ("path", "shape", "dtype", "sample_sha256", "bytes", "unreadable")
                        if k in ident
                    }
                ),
            }
        )
    cell_ids = {}
    for rec in cells.values():
        for role, ident in (rec.get("data_identity") or {}).items():
            cell_ids.setdefault(role, set()).add(ident.get("sample_sha256"))
    for role, hashes in cell_ids.items():
        rows.append(
            {
                "setting": f"training data identity: {role}",
                "value": f"sample sha256 {', '.join(sorted(map(str, hashes)))} ({len(hashes)} distinct)",
            }
        )
    envs = list(
        dict.fromkeys(
            environment_text({**rec["environment"], "seed": None})  # one line per distinct build
            for rec in cells.values()
            if rec.get("environment")
        )
    )
    return rows, envs


def write_study_report(
    study: Study,
    out: Path,
    table: pd.DataFrame,
    stats: pd.DataFrame,
    summary: Summary,
    smoke: bool = False,
    cells: pd.DataFrame | None = None,
    provenance: dict[str, Any] | None = None,
) -> Path:
    """Write ``OUT/figures/*.png`` (+ ``.svg``, ``profile-*.csv``, ``curves-*.png``), ``OUT/comparisons.csv``,
    ``OUT/summary.csv``, ``OUT/layer_distances.csv`` (where the study records them) and ``OUT/report.html``;
    return the HTML path. ``cells``: :func:`slicewise.studies.status.cell_table`; ``provenance``:
    :func:`slicewise.studies.aggregate.provenance`."""
    min_n = max(int(study.stats.min_n), 2)
    figdir = out / "figures"
    figdir.mkdir(parents=True, exist_ok=True)
    order = {a: [as_key(v) for v in levels] for a, levels in study.grid.items()}
    cells = cells if cells is not None else pd.DataFrame()
    summ = summary_table(table, list(study.grid), study.stats.confidence, order=order)
    layers = layer_distance_table(table)
    csvs = []
    if not stats.empty:
        comparisons = stats.assign(strata_values=stats.apply(_strata_text, axis=1))
        csvs.append(write_csv(out / "comparisons.csv", comparisons.to_dict("records")))
    if not summ.empty:
        csvs.append(write_csv(out / "summary.csv", summ.to_dict("records")))
    if not layers.empty:
        csvs.append(write_csv(out / "layer_distances.csv", layers.to_dict("records")))
    page = (
        template_env()
        .get_template("study.html")
        .render(
            study=study,
            smoke=smoke,
            min_n=min_n,
            run_grid="; ".join(f"{label(a)} ({a}): {', '.join(map(as_key, lv))}" for a, lv in study.grid.items()),
            n_cells=int(np.prod([len(v) for v in study.grid.values()])),
            status=summary.line(study.name),
            failed=", ".join(c.id for c in summary.failed),
            ci_adjustment=str(stats["ci_adjustment"].iloc[0]) if "ci_adjustment" in stats and len(stats) else "",
            comparison_figures=_comparison_figures(study, table, stats, figdir, min_n, order),
            profile_figures=_profile_figures(study, table, figdir, min_n, order),
            csvs=csvs,
            curves=_curves_figures(out, cells, study, figdir),
            **_page_tables(stats, summ, layers, cells, min_n),
            **_provenance_section(provenance or {}),
        )
    )
    path = out / "report.html"
    with atomic_path(path, overwrite=True) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path


def _comparison_figures(
    study: Study, table: pd.DataFrame, stats: pd.DataFrame, figdir: Path, min_n: int, order: dict[str, list[str]]
) -> list[dict[str, str]]:
    """A figure per comparison (``comparison-NN-<name>.png``) and, over a numeric stratum, its gain curve and
    sentence; what the page shows of each."""
    if stats.empty:
        return []
    comps = {c.label(): c for c in study.comparisons}
    figs = []
    for i, (name, rows) in enumerate(stats.groupby("comparison", sort=False)):
        p = figdir / f"comparison-{i:02d}-{_safe(str(name))}.png"
        comp = comps.get(str(name))
        points = seed_points(table, comp) if comp is not None else None
        _comparison_figure(rows, str(name), p, min_n, points, order.get(str(rows["axis"].iloc[0]), ()))
        gain = _gain(rows, str(name), figdir / f"gain-{p.name[len('comparison-') :]}", study.stats.alpha, min_n)
        figs.append({"title": str(name), "src": f"figures/{p.name}", "svg": f"figures/{p.with_suffix('.svg').name}"})
        figs[-1].update(gain)
    return figs


def _profile_figures(
    study: Study, table: pd.DataFrame, figdir: Path, min_n: int, order: dict[str, list[str]]
) -> list[dict[str, str]]:
    """A figure (``profile-NN-<metric>-<x>.png``) and its CSV per ``figures:`` entry of the study that has data."""
    figs = []
    for i, fig in enumerate(study.figures):
        prof = profile_table(table, fig, study.stats.confidence)
        if prof.empty:
            continue
        p = figdir / f"profile-{i:02d}-{_safe(fig.metric + '-' + fig.x)}.png"
        _profile_figure(prof, fig, p, min_n, order)
        write_csv(p.with_suffix(".csv"), prof.drop(columns="values").to_dict("records"))
        figs.append(
            {
                "title": fig.title or f"{label(fig.metric)} per {label(fig.x)}",
                "src": f"figures/{p.name}",
                "svg": f"figures/{p.with_suffix('.svg').name}",
                "csv": f"figures/{p.with_suffix('.csv').name}",
            }
        )
    return figs


def _page_tables(
    stats: pd.DataFrame, summ: pd.DataFrame, layers: pd.DataFrame, cells: pd.DataFrame, min_n: int
) -> dict[str, Any]:
    """The page's HTML tables (comparisons, summary, layer distances, cells) and the excluded cells."""
    shown = comparisons_rows(stats, min_n) if not stats.empty else []
    highlight = [bool(v) for v in stats["t_reject"]] if not stats.empty and "t_reject" in stats else None
    summ_rows = []
    for _, r in summ.iterrows():
        rec = {c: r[c] for c in summ.columns if c not in ("mean", "ci_low", "ci_high", "n")}
        if "metric" in rec:
            rec["metric"] = label(rec["metric"])
        rec["mean"] = _ci_text(r["mean"], r["ci_low"], r["ci_high"], r["n"], min_n)
        rec["n"] = r["n"]
        summ_rows.append(rec)
    summ_cols = {c: (label(c) if c != "mean" else "mean [CI]") for c in (summ_rows[0] if summ_rows else {})}
    tables = {
        "stats_table": _html_rows(shown, COLUMNS, highlight, text_cols=TEXT_COLUMNS),
        "summary_table": _html_rows(summ_rows, summ_cols),
        "layer_table": "",
        "cells_table": "",
        "excluded": [],
    }
    if not layers.empty:
        tables["layer_table"] = _html_rows(layers.to_dict("records"), {c: label(c) for c in layers.columns})
    if not cells.empty:
        cell_cols = {c: label(c) for c in cells.columns if c != "cell"}
        tables["cells_table"] = _html_rows(cells.to_dict("records"), cell_cols, text_cols=("reason",))
        excluded = cells[~cells["status"].isin(["ok", "pending"])]
        tables["excluded"] = [f"{r['cell']} ({r['status']}: {r['reason']})" for _, r in excluded.iterrows()]
    return tables


def _provenance_section(prov: dict[str, Any]) -> dict[str, Any]:
    """The page's provenance table, the environment of this report and the distinct environments of the cells."""
    rows, cell_envs = provenance_rows(prov) if prov else ([], [])
    return {
        "provenance_table": _html_rows(rows, {"setting": "setting", "value": "value"}, text_cols=("value",)),
        "environment": environment_text(prov.get("environment") or {}),
        "cell_environments": cell_envs,
    }
