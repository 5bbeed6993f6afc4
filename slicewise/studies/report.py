"""Study report: PNG figures (matplotlib) and one HTML page (Jinja2) per study.

Figures: one per comparison (mean ± t-based CI of baseline and each level; a line over the
stratum when it is numeric, e.g. training fraction; bars otherwise) and one per ``figures:``
profile of the study file (e.g. slice shares per slice, Hellinger distance per layer).
"""

from __future__ import annotations

import html
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from slicewise.studies.stats import _as_key, mean_ci
from slicewise.utils import atomic_path
from slicewise.utils.figures import pyplot, save_figure

if TYPE_CHECKING:
    from slicewise.studies.runner import Figure, Study, Summary

MAX_PANELS = 12

_TEMPLATE = """<!doctype html>
<html><head><meta charset="utf-8"><title>slicewise study {{ study.name | e }}</title>
<style>body{font-family:sans-serif;max-width:1200px;margin:2em auto}table{border-collapse:collapse;font-size:12px}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}th{background:#eee}img{max-width:100%}
.sig{background:#dfd}.note{color:#888}</style></head><body>
<h1>Study: {{ study.name | e }}{% if smoke %} (smoke){% endif %}</h1>
<p>{{ study.description | e }}</p>
<p><b>{{ status | e }}</b>{% if failed %} — failed: {{ failed | e }}{% endif %}</p>
<p>Statistics: paired over the pairing unit of each comparison; differences are level − baseline;
mean ± {{ (study.stats.confidence * 100) | round | int }}% t-based CI; paired t-test and Wilcoxon signed-rank,
Holm-corrected across all tests of this study (alpha {{ study.stats.alpha }}); Cohen's d (paired: mean/sd of
differences) and matched-pairs rank-biserial r. Highlighted rows: Holm-corrected t-test p &lt; alpha.</p>
<h2>Comparisons</h2>
{{ stats_table }}
{% for fig in comparison_figures %}<h3>{{ fig.title | e }}</h3><img src="{{ fig.src }}">{% endfor %}
{% if profile_figures %}<h2>Profiles</h2>{% endif %}
{% for fig in profile_figures %}<h3>{{ fig.title | e }}</h3><img src="{{ fig.src }}">{% endfor %}
<h2>Results (mean ± CI over the pairing unit)</h2>
{{ summary_table }}
<p class="note">Tidy table: results.csv; statistics: stats.csv / stats.json.</p>
</body></html>
"""

STATS_COLUMNS = ["comparison", "strata_values", "baseline", "level", "n", "mean_baseline", "mean_level", "mean_diff",
                 "diff_low", "diff_high", "t_stat", "t_p", "t_p_holm", "w_stat", "w_p", "w_p_holm", "cohen_d",
                 "rank_biserial", "note"]


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        if v.is_integer() and abs(v) < 1e6:
            return str(int(v))
        return f"{v:.3g}" if abs(v) < 1e-3 and v != 0 else f"{v:.4f}"
    return html.escape(str(v))


def _html_table(frame: pd.DataFrame, highlight: pd.Series | None = None) -> str:
    if frame.empty:
        return "<p class='note'>(nothing yet)</p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = []
    for i, (_, row) in enumerate(frame.iterrows()):
        cls = " class='sig'" if highlight is not None and bool(highlight.iloc[i]) else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{_fmt(v)}</td>" for v in row.to_numpy()) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _strata_text(row: pd.Series) -> str:
    names = [s for s in str(row.get("strata", "") or "").split(",") if s]
    return ", ".join(f"{s}={_fmt(row[s])}" for s in names)


def _numeric(values: pd.Series) -> bool:
    try:
        pd.to_numeric(values.astype(str))
        return True
    except (ValueError, TypeError):
        return False


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")[:80] or "figure"


def _comparison_figure(rows: pd.DataFrame, title: str, path: Path) -> None:
    """Mean ± CI per level: line over a numeric stratum, else grouped bars per stratum."""
    plt = pyplot()
    strata = [s for s in str(rows["strata"].iloc[0] or "").split(",") if s]
    xcol = next((s for s in strata if _numeric(rows[s])), None)
    panel_cols = [s for s in strata if s != xcol]
    panels = list(rows.groupby(panel_cols, sort=True)) if panel_cols else [((), rows)]
    panels = panels[:MAX_PANELS]
    ncol = min(len(panels), 4)
    nrow = math.ceil(len(panels) / ncol)
    fig, axs = plt.subplots(nrow, ncol, figsize=(4 * ncol, 3.2 * nrow), squeeze=False)
    for ax, (key, sub) in zip(axs.flat, panels):
        key = key if isinstance(key, tuple) else (key,)
        base = str(sub["baseline"].iloc[0])
        if xcol is not None:
            sub = sub.assign(_x=pd.to_numeric(sub[xcol].astype(str))).sort_values("_x")
            b = sub.groupby("_x")[["mean_baseline", "mean_baseline_low", "mean_baseline_high"]].first()
            ax.errorbar(b.index, b["mean_baseline"], yerr=_yerr(b, "mean_baseline"), marker="o", capsize=3, label=base)
            for level, ls in sub.groupby("level", sort=False):
                ax.errorbar(ls["_x"], ls["mean_level"], yerr=_yerr(ls, "mean_level"), marker="o", capsize=3, label=str(level))
            ax.set_xlabel(xcol)
        else:
            names = [base, *map(str, sub["level"])]
            means = [sub["mean_baseline"].iloc[0], *sub["mean_level"]]
            lows = [sub["mean_baseline_low"].iloc[0], *sub["mean_level_low"]]
            highs = [sub["mean_baseline_high"].iloc[0], *sub["mean_level_high"]]
            err = np.nan_to_num(np.abs(np.array([np.subtract(means, lows), np.subtract(highs, means)])))
            colors = ["0.6"] + ["C0" if not r else "C2" for r in sub.get("t_reject", [False] * len(sub))]
            ax.bar(names, means, yerr=err, capsize=3, color=colors)
            ax.tick_params(axis="x", rotation=30)
        ax.set_ylabel(str(sub["metric"].iloc[0]))
        ax.set_title(", ".join(f"{c}={v}" for c, v in zip(panel_cols, key)) or str(sub["axis"].iloc[0]), fontsize=9)
        if xcol is not None:
            ax.legend(fontsize=7)
    for ax in list(axs.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=90)


def _yerr(frame: pd.DataFrame, key: str) -> np.ndarray:
    m = frame[key].to_numpy(float)
    return np.nan_to_num(np.abs(np.array([m - frame[f"{key}_low"].to_numpy(float), frame[f"{key}_high"].to_numpy(float) - m])))


def profile_table(table: pd.DataFrame, fig: Figure, confidence: float = 0.95) -> pd.DataFrame:
    """Mean ± CI of ``fig.metric`` per (facet, hue, x) over the remaining rows (seeds, images)."""
    keys = [k for k in (fig.facet, fig.hue, fig.x) if k]
    if table.empty or any(k not in table.columns for k in [*keys, *fig.where]):
        return pd.DataFrame()
    sub = table[table["metric"] == fig.metric]
    for col, val in fig.where.items():
        sub = sub[sub[col].map(_as_key) == _as_key(val)]
    rows = []
    for key, g in sub.groupby(keys, sort=False):
        m, lo, hi = mean_ci(g["value"].to_numpy(), confidence)
        rows.append({**dict(zip(keys, key if isinstance(key, tuple) else (key,))), "mean": m, "low": lo, "high": hi,
                     "n": len(g)})
    return pd.DataFrame(rows)


def _profile_figure(table: pd.DataFrame, fig: Figure, path: Path, confidence: float) -> bool:
    plt = pyplot()
    prof = profile_table(table, fig, confidence)
    if prof.empty:
        return False
    facets = list(prof.groupby(fig.facet, sort=False)) if fig.facet else [("", prof)]
    facets = facets[:MAX_PANELS]
    f, axs = plt.subplots(1, len(facets), figsize=(4.5 * len(facets), 3.4), squeeze=False)
    for ax, (fval, sub) in zip(axs.flat, facets):
        hues = list(sub.groupby(fig.hue, sort=False)) if fig.hue else [("", sub)]
        xs = list(dict.fromkeys(sub[fig.x]))
        if _numeric(pd.Series(xs)):
            xs.sort(key=float)
        pos = {x: i for i, x in enumerate(xs)}
        for j, (hval, hs) in enumerate(hues):
            offset = (j - (len(hues) - 1) / 2) * 0.08
            xp = np.array([pos[x] for x in hs[fig.x]]) + offset
            err = np.nan_to_num(np.abs(np.array([hs["mean"] - hs["low"], hs["high"] - hs["mean"]])))
            ax.errorbar(xp, hs["mean"], yerr=err, marker="o", capsize=3, label=str(hval))
        ax.set_xticks(range(len(xs)), [_as_key(x) for x in xs], rotation=30 if len(xs) > 6 else 0)
        ax.set_xlabel(fig.x)
        ax.set_ylabel(fig.metric)
        ax.set_title(f"{fig.facet}={fval}" if fig.facet else "", fontsize=9)
        if fig.hue:
            ax.legend(fontsize=7, title=fig.hue, title_fontsize=7)
    f.suptitle(fig.title or f"{fig.metric} per {fig.x}", fontsize=10)
    f.tight_layout()
    save_figure(f, path, dpi=90)
    return True


def summary_table(table: pd.DataFrame, axes: list[str], confidence: float = 0.95, pair: str = "seed") -> pd.DataFrame:
    """Mean ± CI and n of every metric per combination of the non-``pair`` axes and labels."""
    if table.empty:
        return pd.DataFrame()
    keys = [c for c in table.columns if c not in ("cell", "index", "value", pair) and table[c].notna().any()]
    rows = []
    for key, g in table.groupby(keys, sort=True, dropna=False):
        m, lo, hi = mean_ci(g["value"].to_numpy(), confidence)
        rows.append({**dict(zip(keys, key if isinstance(key, tuple) else (key,))), "mean": m, "ci_low": lo,
                     "ci_high": hi, "n": len(g)})
    return pd.DataFrame(rows)


def write_study_report(study: Study, out: Path, table: pd.DataFrame, stats: pd.DataFrame, summary: Summary,
                       smoke: bool = False) -> Path:
    """Write ``OUT/figures/*.png`` and ``OUT/report.html``; return the HTML path."""
    import jinja2

    figdir = out / "figures"
    figdir.mkdir(parents=True, exist_ok=True)
    comp_figs, prof_figs = [], []
    if not stats.empty:
        for i, (name, rows) in enumerate(stats.groupby("comparison", sort=False)):
            p = figdir / f"comparison-{i:02d}-{_safe(str(name))}.png"
            _comparison_figure(rows, str(name), p)
            comp_figs.append({"title": str(name), "src": f"figures/{p.name}"})
    for i, fig in enumerate(study.figures):
        p = figdir / f"profile-{i:02d}-{_safe(fig.metric + '-' + fig.x)}.png"
        if _profile_figure(table, fig, p, study.stats.confidence):
            prof_figs.append({"title": fig.title or f"{fig.metric} per {fig.x}", "src": f"figures/{p.name}"})
    if not stats.empty:
        shown = stats.assign(strata_values=stats.apply(_strata_text, axis=1))
        stats_html = _html_table(shown[[c for c in STATS_COLUMNS if c in shown]], shown.get("t_reject"))
    else:
        stats_html = _html_table(stats)
    page = jinja2.Template(_TEMPLATE).render(
        study=study, smoke=smoke,
        status=summary.line(study.name), failed=", ".join(c.id for c in summary.failed),
        stats_table=stats_html, comparison_figures=comp_figs, profile_figures=prof_figs,
        summary_table=_html_table(summary_table(table, list(study.grid), study.stats.confidence)))
    path = out / "report.html"
    with atomic_path(path) as tmp:
        tmp.write_text(page)
    return path
