"""Paired statistics for study comparisons: mean ± t-based CI, Wilcoxon, paired t, Holm, effect sizes.

Conventions
-----------
- A comparison pairs a baseline level of one grid axis with each other level; the pairing unit
  is given by ``pair_by`` (seed; or seed and image / fold). Differences are ``level − baseline``.
- Confidence intervals are two-sided, t-based: mean ± t_{1−α/2, n−1} · sd / √n (sd with ddof 1).
- Paired t-test: :func:`scipy.stats.ttest_rel`; Wilcoxon signed-rank: :func:`scipy.stats.wilcoxon`
  (``zero_method="wilcox"``: zero differences are dropped, scipy's default), both two-sided.
- Effect sizes: Cohen's d for paired samples d_z = mean(diff) / sd(diff); matched-pairs
  rank-biserial r = (W+ − W−) / (W+ + W−) over the non-zero differences (Kerby 2014), in [−1, 1].
- Holm's step-down correction across all tests of a study (NaN p-values are left out and stay NaN;
  checked against ``statsmodels.stats.multitest.multipletests``),
  separately for the t-test and the Wilcoxon p-values.
- Too few pairs (n < ``min_n``, default 3) or zero spread: the p-value is NaN and ``note`` says why;
  nothing raises. Below ``min_n`` the effect sizes (Cohen's d, rank-biserial r) are NaN too: with one
  or two pairs they are noise (d of −11 from two seeds); the report shows ``n/a (n < 3)``.
- Raw and adjusted p side by side: ``p_raw`` / ``p_holm`` are the paired t-test's (the primary test);
  ``t_p``/``t_p_holm`` and ``w_p``/``w_p_holm`` keep both tests.
- Intervals: ``diff_low``/``diff_high`` are per-comparison (``confidence``); ``diff_low_adj``/``diff_high_adj``
  are Bonferroni-simultaneous over the m tests the Holm correction spans (confidence 1 − α/m per interval,
  ``ci_adjustment`` says which). A simultaneous interval excluding 0 implies Holm p < α (Holm never
  adjusts a p more than Bonferroni); Holm may reject where it does not.
- Minimum attainable p at the comparison's n (``t_p_min``, ``w_p_min``): the exact two-sided Wilcoxon
  signed-rank test over n non-zero pairs cannot go below 2 / 2^n (all differences of one sign:
  0.25 at n = 3, 0.0625 at 5, 0.0078 at 8); the t-test's is 0 (continuous) from n = 2. A test whose
  minimum exceeds α cannot reject and is flagged in ``note``.
- Equivalence (TOST, two one-sided paired t-tests against ±``margin``, :func:`tost_paired`; agrees
  with ``statsmodels.stats.weightstats.ttost_paired``): ``tost_p`` (and ``tost_p_holm``) is the larger
  one-sided p. ``verdict``: ``different`` (Holm t-test p < α), ``equivalent within ±m`` (not
  different and Holm TOST p < α), else ``no evidence either way``; ``untested`` below ``min_n``.
- Detectable effect (``mdd``): the smallest |mean difference| the two-sided paired t-test at level α
  detects with 80 % power at this n and the observed sd of the differences (noncentral t,
  :func:`min_detectable_effect`; agrees with ``statsmodels`` ``TTestPower``). :func:`pairs_needed`
  is the inverse (the n that detects a given effect), used to size the packaged grids.
- Failed cells: rows whose ``status`` column is not ``ok`` (see :mod:`slicewise.studies.aggregate`)
  are left out of every test (:func:`study_statistics`).
- Metric ranges (:data:`METRIC_RANGES`: Dice, IoU, ARE, AP, MA, shares, raw Hellinger in [0, 1], the
  bias-corrected Hellinger in [−1, 1]; VOI ≥ 0):
  every CI of a mean is clipped to the metric's range and a CI of a difference to ±(range width),
  so Dice at n = 2 never shows −0.5 … 1.4 (a t interval clipped to the range, not re-derived; the
  report draws no bars below ``min_n``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field
from scipy import stats as sps

from slicewise.config import StrictModel
from slicewise.errors import ConfigError
from slicewise.studies.order import natural_key, natural_sorted

VALUE = "value"
METRIC = "metric"

UNIT = (0.0, 1.0)
METRIC_RANGES: dict[str, tuple[float, float]] = {
    **{
        m: UNIT
        for m in (
            "dice",
            "iou",
            "mean_dice",
            "mean_iou",
            "foreground_dice",
            "are",
            "rand_precision",
            "rand_recall",
            "ap",
            "ap50",
            "ap75",
            "seg_accuracy",
            "ma",
            "mirror_asymmetry",
            "share",
            "centre_share",
            "hellinger_raw",
            "hellinger_null",
            "accuracy",
        )
    },
    **{m: (0.0, math.inf) for m in ("voi", "voi_split", "voi_merge")},
    "pair_difference": (-1.0, 1.0),
    "hellinger": (-1.0, 1.0),  # bias-corrected: raw − null baseline
}
"""Value range of the metrics studies record (CIs are clipped to it); unknown metrics are unbounded."""


def metric_range(metric: str) -> tuple[float, float]:
    """(low, high) of a metric's values; (−inf, inf) for a metric not in :data:`METRIC_RANGES`."""
    return METRIC_RANGES.get(str(metric), (-math.inf, math.inf))


def clip_ci(m: float, lo: float, hi: float, bounds: tuple[float, float] | None) -> tuple[float, float, float]:
    """(m, lo, hi) with the bounds clipped to ``bounds`` (NaN stays NaN)."""
    if bounds is None:
        return m, lo, hi
    a, b = bounds
    clip = lambda v: v if math.isnan(v) else min(max(v, a), b)  # noqa: E731
    return m, clip(lo), clip(hi)


def diff_range(bounds: tuple[float, float]) -> tuple[float, float]:
    """Range of a difference of two values in ``bounds``: ±(high − low)."""
    w = bounds[1] - bounds[0]
    return -w, w


class Comparison(StrictModel):
    """One comparison of a study: ``axis`` level ``baseline`` vs the other levels on ``metric``.

    ``where`` pins label columns (e.g. ``{test: in_domain}``); ``pair_by`` names the pairing unit;
    ``per`` stratifies (one test per value, e.g. per training fraction). Grid axes and label
    columns that vary but are named nowhere are stratified automatically, unless listed in
    ``average_over`` (then rows are averaged within each pair first).
    """

    name: str = ""
    axis: str
    baseline: Any
    levels: list[Any] | None = None
    metric: str
    where: dict[str, Any] = Field(default_factory=dict)
    pair_by: list[str] = Field(default_factory=lambda: ["seed"])
    per: list[str] = Field(default_factory=list)
    average_over: list[str] = Field(default_factory=list)
    higher_is_better: bool = True
    margin: float | None = Field(default=None, gt=0)
    """Equivalence margin (metric units) of the TOST; default: the study's ``stats.margin``."""

    def label(self) -> str:
        """Display name: ``name`` or ``metric: axis levels vs baseline``."""
        return self.name or f"{self.metric}: {self.axis} vs {self.baseline}"


class StatsSettings(StrictModel):
    """Study-wide settings: significance level, CI confidence, fewest pairs for a test."""

    alpha: float = 0.05
    confidence: float = 0.95
    min_n: int = 3
    correction: Literal["holm", "none"] = "holm"
    margin: float = Field(default=0.02, gt=0)
    """Equivalence margin ±m of the TOST in metric units (0.02 = two Dice/IoU points)."""
    power: float = Field(default=0.8, gt=0, lt=1)
    """Power of the detectable-effect figure (``mdd``)."""


def mean_ci(values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): t-based two-sided CI of the mean; NaN bounds for n < 2 (NaNs dropped)."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    n = x.size
    if n == 0:
        return math.nan, math.nan, math.nan
    m = float(x.mean())
    if n < 2:
        return m, math.nan, math.nan
    half = float(sps.t.ppf(0.5 + confidence / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return m, m - half, m + half


def rank_biserial(diff: Sequence[float] | np.ndarray) -> float:
    """Matched-pairs rank-biserial correlation of paired differences (zeros dropped); NaN if none left."""
    d = np.asarray(diff, dtype=float)
    d = d[d != 0]
    if d.size == 0:
        return math.nan
    ranks = sps.rankdata(np.abs(d))
    w_plus, w_minus = ranks[d > 0].sum(), ranks[d < 0].sum()
    return float((w_plus - w_minus) / (w_plus + w_minus))


def wilcoxon_min_p(n: int) -> float:
    """Smallest two-sided p of the exact Wilcoxon signed-rank test over ``n`` non-zero pairs: 2 / 2^n (capped at 1)."""
    return 1.0 if n < 1 else min(1.0, 2.0 / 2.0**n)


def tost_paired(diff: Sequence[float] | np.ndarray, margin: float) -> float:
    """TOST p of paired differences against the equivalence interval (−margin, +margin): the larger of
    the one-sided t-test p-values for H0 mean ≤ −margin and H0 mean ≥ +margin; NaN for n < 2 or sd 0."""
    d = np.asarray(diff, dtype=float)
    n = d.size
    if n < 2:
        return math.nan
    sd = float(d.std(ddof=1))
    if not sd > 0:
        return math.nan
    se = sd / math.sqrt(n)
    m = float(d.mean())
    p_low = float(sps.t.sf((m + margin) / se, n - 1))
    p_high = float(sps.t.cdf((m - margin) / se, n - 1))
    return max(p_low, p_high)


def _power(d: float, n: int, alpha: float) -> float:
    df = n - 1
    crit = float(sps.t.ppf(1 - alpha / 2, df))
    nc = d * math.sqrt(n)
    upper, lower = float(sps.nct.sf(crit, df, nc)), float(sps.nct.cdf(-crit, df, nc))
    if not math.isfinite(upper):
        upper = 1.0 - float(sps.nct.cdf(crit, df, nc))
    return (upper if math.isfinite(upper) else float(nc > crit)) + (lower if math.isfinite(lower) else 0.0)


@functools.lru_cache(maxsize=256)
def min_detectable_effect(n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """Standardized effect d = δ / sd that a two-sided paired t-test at level ``alpha`` detects with
    probability ``power`` at ``n`` pairs (noncentral t); NaN for n < 2."""
    from scipy.optimize import brentq

    if n < 2:
        return math.nan
    hi = 1.0
    while _power(hi, n, alpha) < power:  # bracket the root; the noncentral t is well defined up to here
        hi *= 2
        if hi > 1e4:
            return math.inf
    return float(brentq(lambda d: _power(d, n, alpha) - power, 0.0, hi, xtol=1e-10))


def pairs_needed(effect: float, sd: float, alpha: float = 0.05, power: float = 0.8, max_n: int = 1000) -> int:
    """Fewest pairs n at which the two-sided paired t-test at ``alpha`` detects a mean difference
    ``effect`` (metric units) with ``power``, given the sd of the paired differences."""
    d = abs(effect) / sd
    for n in range(2, max_n + 1):
        if _power(d, n, alpha) >= power:
            return n
    raise ValueError(f"effect {effect} with sd {sd} needs more than {max_n} pairs")


def paired_stats(
    baseline: Sequence[float],
    other: Sequence[float],
    confidence: float = 0.95,
    min_n: int = 3,
    bounds: tuple[float, float] | None = None,
    margin: float = 0.02,
    alpha: float = 0.05,
    power: float = 0.8,
) -> dict[str, Any]:
    """Compare paired samples (``other − baseline``): means with CIs, t-test, Wilcoxon, effect sizes.

    Returns plain floats/ints/str: ``n``, ``mean_baseline`` (+ ``_low``/``_high``), ``mean_level``
    (+ CI), ``mean_diff`` (+ ``diff_low``/``diff_high``), ``t_stat``, ``t_p``, ``w_stat``, ``w_p``,
    ``cohen_d``, ``rank_biserial``, ``sd_diff``, ``t_p_min``, ``w_p_min``, ``margin``, ``tost_p``, ``mdd``,
    ``note``. Pairs with a NaN on either side are dropped.
    ``bounds``: the metric's range (:func:`metric_range`): mean CIs are clipped to it, the difference's
    CI to :func:`diff_range`. Effect sizes are NaN below ``min_n`` pairs.
    """
    a = np.asarray(baseline, dtype=float)
    b = np.asarray(other, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in length: {a.shape} vs {b.shape}")
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    d = b - a
    n = int(d.size)
    notes: list[str] = []
    out: dict[str, Any] = {"n": n}
    for key, x in (("mean_baseline", a), ("mean_level", b)):
        m, lo, hi = clip_ci(*mean_ci(x, confidence), bounds)
        out.update({key: m, f"{key}_low": lo, f"{key}_high": hi})
    m, lo, hi = clip_ci(*mean_ci(d, confidence), None if bounds is None else diff_range(bounds))
    out.update(mean_diff=m, diff_low=lo, diff_high=hi)
    sd = float(d.std(ddof=1)) if n >= 2 else math.nan
    enough = n >= max(min_n, 2)
    out["sd_diff"] = sd
    out["cohen_d"] = m / sd if enough and sd > 1e-12 * max(1.0, abs(m)) else math.nan
    out["rank_biserial"] = rank_biserial(d) if enough else math.nan
    out.update(t_stat=math.nan, t_p=math.nan, w_stat=math.nan, w_p=math.nan)
    nonzero = int(np.count_nonzero(d))
    out["t_p_min"] = 0.0 if n >= 2 else math.nan
    out["w_p_min"] = wilcoxon_min_p(nonzero)
    out["margin"] = float(margin)
    out["tost_p"] = tost_paired(d, margin) if enough else math.nan
    out["mdd"] = min_detectable_effect(n, alpha, power) * sd if enough and sd > 0 else math.nan
    if n < max(min_n, 2):
        notes.append(f"n={n} pairs < {max(min_n, 2)}: no test (add seeds/images)")
    elif np.ptp(d) <= 1e-12 * max(1.0, float(np.abs(d).max())):
        notes.append("all differences equal: no test")
    else:
        t = sps.ttest_rel(b, a)
        out.update(t_stat=float(t.statistic), t_p=float(t.pvalue))
        if nonzero < 1:
            notes.append("all differences zero: no Wilcoxon test")
        else:
            w = sps.wilcoxon(b, a, zero_method="wilcox")
            out.update(w_stat=float(w.statistic), w_p=float(w.pvalue))
            if out["w_p_min"] > alpha:
                notes.append(
                    f"Wilcoxon at {nonzero} non-zero pairs cannot go below p = {out['w_p_min']:.3g} "
                    f"(2/2^{nonzero}) > {alpha:g}: not a test here"
                )
    out["note"] = "; ".join(notes)
    return out


def holm(pvalues: Sequence[float] | np.ndarray, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Holm step-down correction: (reject, adjusted p); NaN inputs stay NaN / not rejected.

    Sorted p_(1) ≤ … ≤ p_(m): adjusted p_(i) = max_{j ≤ i} min(1, (m − j + 1) · p_(j)); reject where
    adjusted ≤ alpha. Equal to ``statsmodels.stats.multitest.multipletests(method="holm")``
    (tested), which costs ~0.1 s per call.
    """
    p = np.asarray(pvalues, dtype=float)
    adjusted = np.full(p.shape, math.nan)
    ok = np.flatnonzero(~np.isnan(p))
    if ok.size:
        order = ok[np.argsort(p[ok], kind="stable")]
        m = order.size
        adjusted[order] = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    reject = np.zeros(p.shape, dtype=bool)
    reject[ok] = adjusted[ok] <= alpha
    return reject, adjusted


def as_key(v: Any) -> str:
    """Axis values compare as text, so YAML ``0.1`` matches JSON ``0.1`` and ``rgb`` matches ``rgb``."""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _strata(frame: pd.DataFrame, comp: Comparison, axes: Sequence[str], labels: Sequence[str]) -> list[str]:
    """Columns to stratify by: ``per`` plus any varying axis/label named nowhere else."""
    named = {comp.axis, *comp.pair_by, *comp.per, *comp.average_over, *comp.where}
    auto = [c for c in (*axes, *labels) if c not in named and c in frame and frame[c].nunique(dropna=True) > 1]
    return [*comp.per, *auto]


def compare(
    results: pd.DataFrame,
    comp: Comparison,
    axes: Sequence[str],
    labels: Sequence[str] = (),
    settings: StatsSettings | None = None,
) -> pd.DataFrame:
    """Rows of the statistics table for one comparison (one per stratum × non-baseline level).

    ``results`` is the tidy table (one row per cell and metric; grid axes and label columns,
    ``metric``, ``value``). Rows sharing a pairing key are averaged first (``n_rows_averaged``).
    """
    settings = settings or StatsSettings()
    for col in (comp.axis, *comp.pair_by, *comp.per, *comp.where):
        if col not in results.columns:
            raise ConfigError(
                f"comparison {comp.label()!r}: no column {col!r} in the results; "
                f"columns are {', '.join(map(str, results.columns))}"
            )
    frame = results[results[METRIC] == comp.metric]
    for col, val in comp.where.items():
        frame = frame[frame[col].map(as_key) == as_key(val)]
    if frame.empty:
        return pd.DataFrame()
    frame = frame.assign(_level=frame[comp.axis].map(as_key))
    strata = _strata(frame, comp, axes, labels)
    base = as_key(comp.baseline)
    wanted = [as_key(v) for v in comp.levels] if comp.levels is not None else None
    rows: list[dict[str, Any]] = []
    groups = frame.groupby(strata, dropna=False, sort=True) if strata else [((), frame)]
    for key, sub in groups:
        key = key if isinstance(key, tuple) else (key,)
        keys = [*comp.pair_by, "_level"]
        counts = sub.groupby(keys, dropna=False)[VALUE].size()
        table = sub.groupby(keys, dropna=False)[VALUE].mean().unstack("_level")
        if base not in table.columns:
            continue
        levels = natural_sorted(
            [c for c in table.columns if c != base and (wanted is None or c in wanted)], wanted or ()
        )
        for level in levels:
            pair = table[[base, level]].dropna()
            res = paired_stats(
                pair[base].to_numpy(),
                pair[level].to_numpy(),
                confidence=settings.confidence,
                min_n=settings.min_n,
                bounds=metric_range(comp.metric),
                margin=comp.margin or settings.margin,
                alpha=settings.alpha,
                power=settings.power,
            )
            row: dict[str, Any] = {
                "comparison": comp.label(),
                "metric": comp.metric,
                "axis": comp.axis,
                "baseline": base,
                "level": level,
            }
            row.update(dict(zip(strata, key)))
            row["strata"] = ",".join(strata)
            row.update(res)
            row["n_rows_averaged"] = int(counts.max())
            row["higher_is_better"] = comp.higher_is_better
            rows.append(row)
    rows.sort(key=lambda r: tuple(natural_key(r[c]) for c in (*strata, "level")))  # layers by stride, masks by level
    return pd.DataFrame(rows)


def _adjusted_intervals(table: pd.DataFrame, settings: StatsSettings) -> pd.DataFrame:
    """``diff_low_adj``/``diff_high_adj``: Bonferroni-simultaneous t intervals over the m tests Holm spans
    (per-comparison when ``correction: none``), clipped like the per-comparison ones; ``ci_adjustment``."""
    m = int(table["t_p"].notna().sum())
    holm_on = settings.correction == "holm" and m > 1
    level = 1 - (1 - settings.confidence) / m if holm_on else settings.confidence
    lows, highs = [], []
    for _, r in table.iterrows():
        n, sd, mean = int(r["n"]), float(r["sd_diff"]), float(r["mean_diff"])
        if n < 2 or math.isnan(sd):
            lows.append(math.nan), highs.append(math.nan)
            continue
        half = float(sps.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
        _, lo, hi = clip_ci(mean, mean - half, mean + half, diff_range(metric_range(str(r["metric"]))))
        lows.append(lo), highs.append(hi)
    table["diff_low_adj"], table["diff_high_adj"] = lows, highs
    pct = f"{settings.confidence * 100:g}%"
    table["ci_adjustment"] = (
        f"Bonferroni-simultaneous {pct} over m={m} tests (each at {level * 100:.4g}%)"
        if holm_on
        else f"per-comparison {pct} (not adjusted)"
    )
    return table


def _verdict(r: pd.Series, settings: StatsSettings) -> str:
    if pd.isna(r["t_p"]):
        return "untested"
    if bool(r["t_reject"]):
        return "different"
    if not pd.isna(r.get("tost_p_holm")) and float(r["tost_p_holm"]) < settings.alpha:
        return f"equivalent within ±{float(r['margin']):g}"
    return "no evidence either way"


def study_statistics(
    results: pd.DataFrame,
    comparisons: Sequence[Comparison],
    axes: Sequence[str],
    labels: Sequence[str] = (),
    settings: StatsSettings | None = None,
) -> pd.DataFrame:
    """The statistics table of a study: every comparison, then Holm across all its tests.

    Rows of ``results`` whose ``status`` is not ``ok`` (failed-to-learn or error cells) are left out.
    Adds ``t_p_holm``, ``w_p_holm``, ``tost_p_holm``, ``t_reject``, ``w_reject`` (at ``settings.alpha``), ``p_raw``
    / ``p_holm`` (the t-test's, side by side), the adjusted intervals (:func:`_adjusted_intervals`) and ``verdict``.
    """
    settings = settings or StatsSettings()
    if "status" in results.columns:
        results = results[results["status"].fillna("ok") == "ok"]
    parts = [compare(results, c, axes, labels, settings) for c in comparisons]
    parts = [p for p in parts if not p.empty]
    if not parts:
        return pd.DataFrame()
    table = pd.concat(parts, ignore_index=True)
    for test in ("t", "w", "tost"):
        if settings.correction == "holm":
            reject, padj = holm(table[f"{test}_p"].to_numpy(), settings.alpha)
        else:
            padj = table[f"{test}_p"].to_numpy()
            reject = padj < settings.alpha
        table[f"{test}_p_holm"] = padj
        if test != "tost":
            table[f"{test}_reject"] = reject
    table = _adjusted_intervals(table, settings)
    table["verdict"] = [_verdict(r, settings) for _, r in table.iterrows()]
    first = ["comparison", "metric", "axis", "baseline", "level"]
    table.insert(len(first), "p_raw", table["t_p"])
    table.insert(len(first) + 1, "p_holm", table["t_p_holm"])
    table.insert(len(first) + 2, "p_test", "paired t-test (two-sided)")
    return table
