"""Statistics of study comparisons: agree with scipy.stats / statsmodels on known inputs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from slicewise.studies.stats import (
    Comparison,
    StatsSettings,
    compare,
    holm,
    mean_ci,
    paired_stats,
    rank_biserial,
    study_statistics,
)

A = np.array([0.71, 0.74, 0.69, 0.77, 0.73, 0.70, 0.75, 0.72])
B = np.array([0.75, 0.79, 0.70, 0.80, 0.78, 0.69, 0.81, 0.76])


def test_paired_stats_matches_scipy() -> None:
    r = paired_stats(A, B)
    t = sps.ttest_rel(B, A)
    w = sps.wilcoxon(B, A)
    assert r["n"] == 8
    assert r["t_stat"] == pytest.approx(t.statistic) and r["t_p"] == pytest.approx(t.pvalue)
    assert r["w_stat"] == pytest.approx(w.statistic) and r["w_p"] == pytest.approx(w.pvalue)
    lo, hi = t.confidence_interval(0.95)
    assert (r["diff_low"], r["diff_high"]) == (pytest.approx(lo), pytest.approx(hi))
    d = B - A
    assert r["mean_diff"] == pytest.approx(d.mean())
    assert r["cohen_d"] == pytest.approx(d.mean() / d.std(ddof=1))
    assert r["mean_baseline"] == pytest.approx(A.mean()) and r["mean_level"] == pytest.approx(B.mean())


def test_mean_ci_matches_scipy_t_interval() -> None:
    m, lo, hi = mean_ci(A, 0.9)
    ref = sps.t.interval(0.9, len(A) - 1, loc=A.mean(), scale=sps.sem(A))
    assert m == pytest.approx(A.mean())
    assert (lo, hi) == (pytest.approx(ref[0]), pytest.approx(ref[1]))
    assert math.isnan(mean_ci([1.0])[1]) and math.isnan(mean_ci([])[0])


def test_rank_biserial_known_values() -> None:
    assert rank_biserial([1, 2, 3]) == 1.0
    assert rank_biserial([1, 2, -3]) == 0.0
    assert rank_biserial([-1, 2, 3, 4]) == pytest.approx(0.8)  # W+ = 9, W- = 1
    assert rank_biserial([0, 0, -1]) == -1.0  # zeros dropped (wilcox zero method)
    assert math.isnan(rank_biserial([0, 0]))


@given(
    st.lists(st.floats(-5, 5, allow_nan=False).filter(lambda v: abs(v) > 1e-3), min_size=6, max_size=20, unique=True)
)
@settings(max_examples=30, deadline=None)
def test_rank_biserial_agrees_with_wilcoxon_statistic(diffs: list[float]) -> None:
    d = np.array(diffs)
    n = d.size
    w = sps.wilcoxon(d).statistic  # min(W+, W-) for the two-sided test
    assert abs(rank_biserial(d)) == pytest.approx(1 - 2 * w / (n * (n + 1) / 2))


@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=3, max_size=15))
@settings(max_examples=30, deadline=None)
def test_swapping_sides_flips_signs_not_p(pairs: list[tuple[float, float]]) -> None:
    a, b = np.array(pairs).T
    fwd, bwd = paired_stats(a, b), paired_stats(b, a)
    for key in ("mean_diff", "t_stat", "cohen_d", "rank_biserial"):
        assert (math.isnan(fwd[key]) and math.isnan(bwd[key])) or fwd[key] == pytest.approx(-bwd[key], abs=1e-9)
    for key in ("t_p", "w_p"):
        assert (math.isnan(fwd[key]) and math.isnan(bwd[key])) or fwd[key] == pytest.approx(bwd[key])
    if not math.isnan(fwd["diff_low"]):
        assert fwd["diff_low"] <= fwd["mean_diff"] <= fwd["diff_high"]


@pytest.mark.parametrize("n", [0, 1, 2])
def test_small_n_gives_nan_p_with_note(n: int) -> None:
    r = paired_stats(A[:n], B[:n])
    assert r["n"] == n and math.isnan(r["t_p"]) and math.isnan(r["w_p"])
    assert "no test" in r["note"]
    if n == 2:
        assert r["mean_diff"] == pytest.approx((B[:2] - A[:2]).mean()) and not math.isnan(r["diff_low"])


def test_constant_differences_give_nan_p() -> None:
    r = paired_stats(A, A + 0.01)
    assert math.isnan(r["t_p"]) and "equal" in r["note"]
    assert r["mean_diff"] == pytest.approx(0.01)


def test_nan_pairs_are_dropped() -> None:
    a, b = A.copy(), B.copy()
    a[0] = np.nan
    r = paired_stats(a, b)
    assert r["n"] == 7 and r["t_p"] == pytest.approx(sps.ttest_rel(B[1:], A[1:]).pvalue)


def test_holm_textbook_example() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    reject, adj = holm(p, 0.05)
    # sorted 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> monotone 0.06
    np.testing.assert_allclose(adj, [0.03, 0.06, 0.06, 0.02])
    assert reject.tolist() == [True, False, False, True]
    ref = multipletests(p, alpha=0.05, method="holm")
    np.testing.assert_allclose(adj, ref[1])


def test_holm_ignores_nan() -> None:
    reject, adj = holm([0.01, math.nan, 0.04], 0.05)
    assert math.isnan(adj[1]) and not reject[1]
    np.testing.assert_allclose(adj[[0, 2]], [0.02, 0.04])


@given(st.lists(st.floats(0, 1), min_size=1, max_size=12), st.sampled_from([0.01, 0.05, 0.1]))
@settings(max_examples=10, deadline=None)
def test_holm_matches_statsmodels_and_invariants(p: list[float], alpha: float) -> None:
    raw = np.array(p)
    reject, adj = holm(raw, alpha)
    ref_reject, ref_adj, _, _ = multipletests(raw, alpha=alpha, method="holm")
    np.testing.assert_allclose(adj, ref_adj, rtol=1e-12, atol=1e-15)
    assert reject.tolist() == ref_reject.tolist()
    assert np.all(adj >= raw - 1e-12) and np.all(adj <= 1)
    order = np.argsort(raw, kind="stable")
    assert np.all(np.diff(adj[order]) >= -1e-12)


def _tidy(rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    for init, shift in (("rgb", 0.0), ("uniform", 0.05), ("random", -0.1)):
        for seed in range(6):
            for test in ("in_domain", "shifted"):
                base = 0.7 + 0.01 * seed - (0.2 if test == "shifted" else 0.0)
                rows.append(
                    {
                        "channel_init": init,
                        "seed": seed,
                        "metric": "dice",
                        "test": test,
                        "value": base + shift + rng.normal(0, 0.01),
                    }
                )
                rows.append({"channel_init": init, "seed": seed, "metric": "are", "test": test, "value": 0.3})
    return pd.DataFrame(rows).sample(frac=1, random_state=0)


def test_compare_pairs_by_seed_and_stratifies_unnamed_labels() -> None:
    df = _tidy(np.random.default_rng(0))
    comp = Comparison(axis="channel_init", baseline="rgb", metric="dice")
    out = compare(df, comp, axes=["channel_init", "seed"], labels=["test"])
    assert len(out) == 4 and set(out["test"]) == {"in_domain", "shifted"}
    row = out[(out["level"] == "uniform") & (out["test"] == "shifted")].iloc[0]
    sub = df[(df.metric == "dice") & (df.test == "shifted")]
    a = sub[sub.channel_init == "rgb"].sort_values("seed")["value"].to_numpy()
    b = sub[sub.channel_init == "uniform"].sort_values("seed")["value"].to_numpy()
    assert row["n"] == 6 and row["t_p"] == pytest.approx(sps.ttest_rel(b, a).pvalue)
    assert row["mean_diff"] == pytest.approx(0.05, abs=0.02)


def test_compare_where_and_average_over() -> None:
    df = _tidy(np.random.default_rng(1))
    pinned = compare(
        df,
        Comparison(axis="channel_init", baseline="rgb", metric="dice", where={"test": "in_domain"}, levels=["random"]),
        axes=["channel_init", "seed"],
        labels=["test"],
    )
    assert len(pinned) == 1 and pinned.iloc[0]["level"] == "random" and pinned.iloc[0]["n_rows_averaged"] == 1
    avg = compare(
        df,
        Comparison(axis="channel_init", baseline="rgb", metric="dice", average_over=["test"]),
        axes=["channel_init", "seed"],
        labels=["test"],
    )
    assert len(avg) == 2 and (avg["n_rows_averaged"] == 2).all()


def test_study_statistics_applies_holm_across_comparisons() -> None:
    df = _tidy(np.random.default_rng(2))
    comps = [
        Comparison(axis="channel_init", baseline="rgb", metric="dice"),
        Comparison(axis="channel_init", baseline="rgb", metric="are"),
    ]
    table = study_statistics(df, comps, axes=["channel_init", "seed"], labels=["test"], settings=StatsSettings())
    assert len(table) == 8
    valid = table["t_p"].notna()
    assert valid.sum() == 4  # the constant "are" metric has no test
    np.testing.assert_allclose(table.loc[valid, "t_p_holm"], multipletests(table.loc[valid, "t_p"], method="holm")[1])
    assert table.loc[~valid, "note"].str.contains("equal").all()


def test_wilcoxon_minimum_attainable_p_is_two_over_two_to_the_n() -> None:
    from slicewise.studies.stats import wilcoxon_min_p

    for n in (3, 5, 6, 8):
        d = np.arange(1, n + 1) / 100  # all differences of one sign: the most extreme case
        assert wilcoxon_min_p(n) == pytest.approx(sps.wilcoxon(d, method="exact").pvalue)
        assert wilcoxon_min_p(n) == pytest.approx(2 / 2**n)
    r = paired_stats(A[:3], B[:3])
    assert r["w_p_min"] == pytest.approx(0.25) and r["t_p_min"] == 0.0
    assert "cannot go below p = 0.25" in r["note"]
    assert "cannot go below" not in paired_stats(A, B)["note"]  # 8 pairs: 2/256 < 0.05


def test_tost_matches_statsmodels() -> None:
    from statsmodels.stats.weightstats import ttost_paired

    from slicewise.studies.stats import tost_paired

    for margin in (0.01, 0.05, 0.2):
        ref = ttost_paired(B, A, -margin, margin)[0]
        assert tost_paired(B - A, margin) == pytest.approx(ref)
        assert paired_stats(A, B, margin=margin)["tost_p"] == pytest.approx(ref)


@pytest.mark.parametrize("n", [3, 5, 8, 20])
def test_min_detectable_effect_matches_statsmodels_power(n: int) -> None:
    from statsmodels.stats.power import TTestPower

    from slicewise.studies.stats import min_detectable_effect, pairs_needed

    ref = TTestPower().solve_power(effect_size=None, nobs=n, alpha=0.05, power=0.8, alternative="two-sided")
    assert min_detectable_effect(n) == pytest.approx(ref, rel=1e-4)
    sd = 0.04
    assert pairs_needed(min_detectable_effect(n) * sd * 1.0001, sd) == n  # the inverse


def test_p_raw_and_holm_side_by_side_with_matching_simultaneous_intervals() -> None:
    df = _tidy(np.random.default_rng(3))
    comps = [Comparison(axis="channel_init", baseline="rgb", metric="dice")]
    table = study_statistics(df, comps, axes=["channel_init", "seed"], labels=["test"], settings=StatsSettings())
    cols = list(table.columns)
    assert cols.index("p_holm") == cols.index("p_raw") + 1
    np.testing.assert_allclose(table["p_raw"], table["t_p"])
    np.testing.assert_allclose(table["p_holm"], multipletests(table["p_raw"], method="holm")[1])
    m = len(table)
    for _, r in table.iterrows():  # Bonferroni-simultaneous t interval at 1 - alpha/m
        d_lo, d_hi = sps.t.interval(
            1 - 0.05 / m, r["n"] - 1, loc=r["mean_diff"], scale=r["sd_diff"] / math.sqrt(r["n"])
        )
        assert (r["diff_low_adj"], r["diff_high_adj"]) == (pytest.approx(d_lo), pytest.approx(d_hi))
        assert r["diff_low_adj"] <= r["diff_low"] and r["diff_high"] <= r["diff_high_adj"]
        if r["diff_low_adj"] > 0 or r["diff_high_adj"] < 0:
            assert r["p_holm"] < 0.05  # an adjusted interval excluding 0 never contradicts the Holm p
    assert table["ci_adjustment"].str.contains(f"Bonferroni-simultaneous 95% over m={m}").all()


def test_verdict_equivalence_or_no_evidence() -> None:
    rng = np.random.default_rng(4)
    base = 0.7 + rng.normal(0, 0.02, 12)
    tight = paired_stats(base, base + rng.normal(0, 0.003, 12), margin=0.02)
    assert tight["tost_p"] < 0.05  # differences well inside ±0.02
    rows = []
    for s in range(12):
        rows += [
            {"k": "a", "seed": s, "metric": "dice", "value": base[s]},
            {"k": "b", "seed": s, "metric": "dice", "value": base[s] + rng.normal(0, 0.003)},
            {"k": "c", "seed": s, "metric": "dice", "value": base[s] + rng.normal(0, 0.2)},
        ]
    table = study_statistics(pd.DataFrame(rows), [Comparison(axis="k", baseline="a", metric="dice")], ["k", "seed"])
    verdict = dict(zip(table["level"], table["verdict"]))
    assert verdict == {"b": "equivalent within ±0.02", "c": "no evidence either way"}
    assert (table["mdd"] > 0).all() and table.set_index("level").loc["c", "mdd"] > table.set_index("level").loc[
        "b", "mdd"
    ]


def test_cells_not_ok_are_left_out_of_the_tests() -> None:
    df = _tidy(np.random.default_rng(5))
    df["status"] = np.where((df["channel_init"] == "uniform") & (df["seed"] < 2), "failed-to-learn", "ok")
    comp = [Comparison(axis="channel_init", baseline="rgb", metric="dice", levels=["uniform"])]
    table = study_statistics(df, comp, ["channel_init", "seed"], ["test"])
    assert (table["n"] == 4).all()  # 6 seeds, 2 failed
