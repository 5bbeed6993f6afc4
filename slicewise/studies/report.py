"""Study report: figures (PNG + SVG), tables (CSV) and one HTML page per study, in the audit reports' style.

Figures: one per comparison (mean ± CI of baseline and each level; a line over the stratum when it
is numeric, e.g. training fraction; bars otherwise) and one per ``figures:`` profile of the study
file (e.g. slice shares per slice, Hellinger distance per layer). Axes and columns carry human labels
(:data:`LABELS`: ``dice`` → "Dice", ``ma`` → "mirror asymmetry (MA)", ``channel_init`` →
"first-layer strategy"; :func:`label`). Numbers print with :func:`slicewise.utils.table.num`.

Confidence intervals respect the metric's range (:func:`slicewise.studies.stats.metric_range`: the
t interval clipped to it). Below ``stats.min_n`` pairs / values (default 3) no interval is drawn: the
point is plotted alone and the panel says ``n = 2 < 3: too few to test``; the table shows
``n/a (n < 3)`` for tests and effect sizes, and Cohen's d ``n/a (sd ≈ 0)`` when the differences do not
vary. The page uses the shared stylesheet (``slicewise/diagnostics/templates/style.css``) and links
``comparisons.csv``, ``summary.csv`` and a CSV per profile figure.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from slicewise.studies.stats import as_key, clip_ci, mean_ci, metric_range
from slicewise.utils import atomic_path
from slicewise.utils.figures import pyplot, save_figure
from slicewise.utils.table import num, write_csv

if TYPE_CHECKING:
    from slicewise.studies.aggregate import Summary
    from slicewise.studies.schema import Figure, Study

MAX_PANELS = 12

LABELS: dict[str, str] = {
    "dice": "Dice", "iou": "IoU", "mean_dice": "mean Dice", "mean_iou": "mean IoU", "foreground_dice": "foreground Dice",
    "are": "adapted Rand error (ARE)", "voi": "VOI (bits)", "voi_split": "VOI split (bits)", "voi_merge": "VOI merge (bits)",
    "ap": "AP", "ap50": "AP-50", "ap75": "AP-75", "seg_accuracy": "segmentation accuracy",
    "ma": "mirror asymmetry (MA)", "mirror_asymmetry": "mirror asymmetry (MA)", "share": "attribution share",
    "centre_share": "centre share", "pair_difference": "pair difference s0 − s(k−1)",
    "hellinger": "mean Hellinger distance", "channel_init": "first-layer strategy", "weights": "encoder weights",
    "encoder": "encoder", "skips": "skip connections", "fraction": "training fraction", "seed": "seed",
    "slice": "input slice", "stage": "stage", "layer": "layer", "shift": "shift", "test": "test set", "image": "image",
}
"""Human labels of metrics, grid axes and label columns (figures and tables); others: underscores → spaces."""

COLUMNS: dict[str, str] = {
    "comparison": "comparison", "strata_values": "stratum", "baseline": "baseline", "level": "level", "n": "n",
    "mean_baseline": "baseline mean", "mean_level": "level mean", "mean_diff": "difference [CI]",
    "t_p_holm": "t-test p (Holm)", "w_p_holm": "Wilcoxon p (Holm)", "cohen_d": "Cohen's d",
    "rank_biserial": "rank-biserial r", "note": "notes",
}
"""Columns of the comparisons table on the page (all columns are in stats.csv / comparisons.csv)."""


def label(name: Any) -> str:
    """Human label of a metric / axis / column name (:data:`LABELS`), else the name with spaces."""
    return LABELS.get(str(name), str(name).replace("_", " "))


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


def _comparison_figure(rows: pd.DataFrame, title: str, path: Path, min_n: int) -> None:
    """Mean ± CI per level: line over a numeric stratum, else bars per stratum; no bars below ``min_n``."""
    plt = pyplot()
    strata = [s for s in str(rows["strata"].iloc[0] or "").split(",") if s]
    xcol = next((s for s in strata if _numeric(rows[s])), None)
    panel_cols = [s for s in strata if s != xcol]
    panels = list(rows.groupby(panel_cols, sort=True)) if panel_cols else [((), rows)]
    panels = panels[:MAX_PANELS]
    ncol = min(len(panels), 4)
    nrow = math.ceil(len(panels) / ncol)
    fig, axs = plt.subplots(nrow, ncol, figsize=(4 * ncol, 3.3 * nrow), squeeze=False)
    metric = str(rows["metric"].iloc[0])
    axis = str(rows["axis"].iloc[0])
    for ax, (key, sub) in zip(axs.flat, panels):
        key = key if isinstance(key, tuple) else (key,)
        base = str(sub["baseline"].iloc[0])
        small = int(sub["n"].min()) if len(sub) else 0
        if xcol is not None:
            sub = sub.assign(_x=pd.to_numeric(sub[xcol].astype(str))).sort_values("_x")
            b = sub.groupby("_x")[["mean_baseline", "mean_baseline_low", "mean_baseline_high", "n"]].first()
            ax.errorbar(b.index, b["mean_baseline"], yerr=_bars(ci_errors(b["mean_baseline"], b["mean_baseline_low"],
                        b["mean_baseline_high"], b["n"], min_n)), marker="o", capsize=3, label=base)
            for level, ls in sub.groupby("level", sort=False):
                ax.errorbar(ls["_x"], ls["mean_level"], yerr=_bars(ci_errors(ls["mean_level"], ls["mean_level_low"],
                            ls["mean_level_high"], ls["n"], min_n)), marker="o", capsize=3, label=str(level))
            ax.set_xlabel(label(xcol))
            ax.legend(title=label(axis))
        else:
            names = [base, *map(str, sub["level"])]
            means = [sub["mean_baseline"].iloc[0], *sub["mean_level"]]
            lows = [sub["mean_baseline_low"].iloc[0], *sub["mean_level_low"]]
            highs = [sub["mean_baseline_high"].iloc[0], *sub["mean_level_high"]]
            ns = [sub["n"].iloc[0], *sub["n"]]
            colors = ["0.6"] + ["C0" if not r else "C2" for r in sub.get("t_reject", [False] * len(sub))]
            ax.bar(names, means, yerr=_bars(ci_errors(means, lows, highs, ns, min_n)), capsize=3, color=colors)
            ax.tick_params(axis="x", rotation=30)
            ax.set_xlabel(label(axis))
        lo, hi = metric_range(metric)
        if math.isfinite(lo) and math.isfinite(hi):
            ax.set_ylim(lo, hi)
        elif math.isfinite(lo):
            ax.set_ylim(bottom=lo)
        if small < min_n:
            ax.text(0.5, 0.97, f"n = {small} < {min_n}: too few to test, no intervals", transform=ax.transAxes,
                    ha="center", va="top", fontsize=8, color="0.3")
        ax.set_ylabel(label(metric))
        ax.set_title(", ".join(f"{label(c)} = {v}" for c, v in zip(panel_cols, key)), fontsize=9)
    for ax in list(axs.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=90)


def profile_table(table: pd.DataFrame, fig: Figure, confidence: float = 0.95) -> pd.DataFrame:
    """Mean ± CI of ``fig.metric`` per (facet, hue, x) over the remaining rows (seeds, images); CIs in the metric's range."""
    keys = [k for k in (fig.facet, fig.hue, fig.x) if k]
    if table.empty or any(k not in table.columns for k in [*keys, *fig.where]):
        return pd.DataFrame()
    sub = table[table["metric"] == fig.metric]
    for col, val in fig.where.items():
        sub = sub[sub[col].map(as_key) == as_key(val)]
    rows = []
    for key, g in sub.groupby(keys, sort=False):
        m, lo, hi = clip_ci(*mean_ci(g["value"].to_numpy(), confidence), metric_range(fig.metric))
        rows.append({**dict(zip(keys, key if isinstance(key, tuple) else (key,))), "mean": m, "low": lo, "high": hi,
                     "n": len(g)})
    return pd.DataFrame(rows)


def _profile_figure(prof: pd.DataFrame, fig: Figure, path: Path, min_n: int) -> None:
    plt = pyplot()
    facets = list(prof.groupby(fig.facet, sort=False)) if fig.facet else [("", prof)]
    facets = facets[:MAX_PANELS]
    f, axs = plt.subplots(1, len(facets), figsize=(4.5 * len(facets), 3.5), squeeze=False)
    for ax, (fval, sub) in zip(axs.flat, facets):
        hues = list(sub.groupby(fig.hue, sort=False)) if fig.hue else [("", sub)]
        xs = list(dict.fromkeys(sub[fig.x]))
        if _numeric(pd.Series(xs)):
            xs.sort(key=float)
        pos = {x: i for i, x in enumerate(xs)}
        for j, (hval, hs) in enumerate(hues):
            offset = (j - (len(hues) - 1) / 2) * 0.08
            xp = np.array([pos[x] for x in hs[fig.x]]) + offset
            ax.errorbar(xp, hs["mean"], yerr=_bars(ci_errors(hs["mean"], hs["low"], hs["high"], hs["n"], min_n)), marker="o",
                        capsize=3, label=str(hval))
        ax.set_xticks(range(len(xs)), [as_key(x) for x in xs], rotation=30 if len(xs) > 6 else 0)
        ax.set_xlabel(label(fig.x))
        ax.set_ylabel(label(fig.metric))
        if int(sub["n"].min()) < min_n:
            ax.text(0.5, 0.97, f"n = {int(sub['n'].min())} < {min_n}: no intervals", transform=ax.transAxes,
                    ha="center", va="top", fontsize=8, color="0.3")
        ax.set_title(f"{label(fig.facet)} = {fval}" if fig.facet else "", fontsize=9)
        if fig.hue:
            ax.legend(title=label(fig.hue))
    f.suptitle(fig.title or f"{label(fig.metric)} per {label(fig.x)}", fontsize=10)
    f.tight_layout()
    save_figure(f, path, dpi=90)


def summary_table(table: pd.DataFrame, axes: list[str], confidence: float = 0.95, pair: str = "seed") -> pd.DataFrame:
    """Mean ± CI (in the metric's range) and n of every metric per combination of the non-``pair`` axes and labels."""
    if table.empty:
        return pd.DataFrame()
    keys = [c for c in table.columns if c not in ("cell", "index", "value", pair) and table[c].notna().any()]
    rows = []
    for key, g in table.groupby(keys, sort=True, dropna=False):
        rec = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        m, lo, hi = clip_ci(*mean_ci(g["value"].to_numpy(), confidence), metric_range(str(rec.get("metric", ""))))
        rows.append({**rec, "mean": m, "ci_low": lo, "ci_high": hi, "n": len(g)})
    return pd.DataFrame(rows)


def _cell(v: Any) -> str:
    import html

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
    ``min_n`` pairs, ``n/a (n < min_n)`` for tests and effect sizes below it, ``n/a (sd ≈ 0)`` for a d
    whose differences do not vary."""
    out = []
    for _, r in stats.iterrows():
        n = r.get("n")
        few = _too_few(n, min_n)
        why = f"n/a (n < {min_n})"
        row = {
            "comparison": str(r["comparison"]), "strata_values": _strata_text(r), "baseline": str(r["baseline"]),
            "level": str(r["level"]), "n": num(n),
            "mean_baseline": _ci_text(r["mean_baseline"], r.get("mean_baseline_low"), r.get("mean_baseline_high"), n, min_n),
            "mean_level": _ci_text(r["mean_level"], r.get("mean_level_low"), r.get("mean_level_high"), n, min_n),
            "mean_diff": _ci_text(r["mean_diff"], r.get("diff_low"), r.get("diff_high"), n, min_n),
            "t_p_holm": why if few else num(r.get("t_p_holm")),
            "w_p_holm": why if few else num(r.get("w_p_holm")),
            "cohen_d": why if few else ("n/a (sd ≈ 0)" if pd.isna(r.get("cohen_d")) else num(r.get("cohen_d"))),
            "rank_biserial": why if few else num(r.get("rank_biserial")),
            "note": str(r.get("note") or ""),
        }
        out.append(row)
    return out


def _html_rows(rows: list[dict[str, Any]], columns: dict[str, str], highlight: list[bool] | None = None,
               text_cols: tuple[str, ...] = ()) -> str:
    import html

    if not rows:
        return "<p class='note'>(nothing yet)</p>"
    head = "".join(f"<th{' class=text' if c in text_cols else ''}>{html.escape(h)}</th>" for c, h in columns.items())
    body = []
    for i, row in enumerate(rows):
        cls = " class='sig'" if highlight is not None and highlight[i] else ""
        cells = "".join(f"<td{' class=text' if c in text_cols else ''}>{_cell(row.get(c))}</td>" for c in columns)
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<div class='table-wrap'><table><tr>{head}</tr>{''.join(body)}</table></div>"


def write_study_report(study: Study, out: Path, table: pd.DataFrame, stats: pd.DataFrame, summary: Summary,
                       smoke: bool = False) -> Path:
    """Write ``OUT/figures/*.png`` (+ ``.svg``, ``profile-*.csv``), ``OUT/comparisons.csv``, ``OUT/summary.csv``
    and ``OUT/report.html``; return the HTML path."""
    from slicewise.diagnostics.report import template_env

    min_n = max(int(study.stats.min_n), 2)
    figdir = out / "figures"
    figdir.mkdir(parents=True, exist_ok=True)
    comp_figs, prof_figs, csvs = [], [], []
    if not stats.empty:
        for i, (name, rows) in enumerate(stats.groupby("comparison", sort=False)):
            p = figdir / f"comparison-{i:02d}-{_safe(str(name))}.png"
            _comparison_figure(rows, str(name), p, min_n)
            comp_figs.append({"title": str(name), "src": f"figures/{p.name}", "svg": f"figures/{p.with_suffix('.svg').name}"})
    for i, fig in enumerate(study.figures):
        prof = profile_table(table, fig, study.stats.confidence)
        if prof.empty:
            continue
        p = figdir / f"profile-{i:02d}-{_safe(fig.metric + '-' + fig.x)}.png"
        _profile_figure(prof, fig, p, min_n)
        write_csv(p.with_suffix(".csv"), prof.to_dict("records"))
        prof_figs.append({"title": fig.title or f"{label(fig.metric)} per {label(fig.x)}", "src": f"figures/{p.name}",
                          "svg": f"figures/{p.with_suffix('.svg').name}", "csv": f"figures/{p.with_suffix('.csv').name}"})
    shown = comparisons_rows(stats, min_n) if not stats.empty else []
    if not stats.empty:
        csvs.append(write_csv(out / "comparisons.csv", stats.assign(strata_values=stats.apply(_strata_text, axis=1))
                              .to_dict("records")))
    highlight = [bool(v) for v in stats["t_reject"]] if not stats.empty and "t_reject" in stats else None
    summ = summary_table(table, list(study.grid), study.stats.confidence)
    if not summ.empty:
        csvs.append(write_csv(out / "summary.csv", summ.to_dict("records")))
    summ_rows = []
    for _, r in summ.iterrows():
        rec = {c: r[c] for c in summ.columns if c not in ("mean", "ci_low", "ci_high", "n")}
        if "metric" in rec:
            rec["metric"] = label(rec["metric"])
        rec["mean"] = _ci_text(r["mean"], r["ci_low"], r["ci_high"], r["n"], min_n)
        rec["n"] = r["n"]
        summ_rows.append(rec)
    summ_cols = {c: (label(c) if c not in ("mean",) else "mean [CI]") for c in (summ_rows[0] if summ_rows else {})}
    page = template_env().get_template("study.html").render(
        study=study, smoke=smoke, min_n=min_n,
        status=summary.line(study.name), failed=", ".join(c.id for c in summary.failed),
        stats_table=_html_rows(shown, COLUMNS, highlight, text_cols=("comparison", "strata_values", "note")),
        comparison_figures=comp_figs, profile_figures=prof_figs, csvs=csvs,
        summary_table=_html_rows(summ_rows, summ_cols))
    path = out / "report.html"
    with atomic_path(path, overwrite=True) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path
