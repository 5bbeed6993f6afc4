"""Study report: CIs inside the metric's range, nothing tested or drawn below min_n, human labels, CSV/SVG exports."""

from __future__ import annotations

import csv
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slicewise.studies.labels import label
from slicewise.studies.report import comparisons_rows, write_study_report
from slicewise.studies.schema import Figure, Study
from slicewise.studies.stats import Comparison, StatsSettings, paired_stats, study_statistics
from slicewise.studies.status import Summary


@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=2, max_size=8))
@settings(max_examples=80, deadline=None)
def test_ci_bounds_stay_in_the_metric_range(pairs: list[tuple[float, float]]) -> None:
    a, b = np.array(pairs).T
    r = paired_stats(a, b, bounds=(0.0, 1.0))
    for key in ("mean_baseline", "mean_level"):
        lo, hi = r[f"{key}_low"], r[f"{key}_high"]
        assert math.isnan(lo) or 0.0 <= lo <= r[key] + 1e-12 <= hi + 2e-12 <= 1.0 + 2e-12
    assert math.isnan(r["diff_low"]) or -1.0 <= r["diff_low"] <= r["diff_high"] <= 1.0


def test_dice_at_n2_is_clipped_and_untested() -> None:
    r = paired_stats([0.1, 0.9], [0.9, 0.2], bounds=(0.0, 1.0))  # unclipped t interval ~ -4.6 … 5.6
    assert r["mean_baseline_low"] == 0.0 and r["mean_baseline_high"] == 1.0
    assert math.isnan(r["t_p"]) and math.isnan(r["cohen_d"]) and math.isnan(r["rank_biserial"])
    assert "n=2 pairs < 3" in r["note"]


def _table(seeds: int, diff: float = 0.1, spread: float = 0.02) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for s in range(seeds):
        base = 0.7 + rng.normal(0, spread)
        for init, v in (("rgb", base), ("uniform", base + diff + rng.normal(0, spread))):
            rows.append(
                {"cell": f"{init}-{s}", "index": 0, "channel_init": init, "seed": s, "metric": "dice", "value": v}
            )
    return pd.DataFrame(rows)


def _study(min_n: int = 3) -> Study:
    return Study(
        name="t",
        cell="fake_cells:fake_cell",
        grid={"channel_init": ["rgb", "uniform"], "seed": [0, 1, 2, 3]},
        comparisons=[Comparison(name="Dice vs rgb", axis="channel_init", baseline="rgb", metric="dice")],
        figures=[Figure(metric="dice", x="channel_init")],
        stats=StatsSettings(min_n=min_n),
    )


def _report(tmp_path: Path, table: pd.DataFrame, study: Study) -> tuple[str, pd.DataFrame]:
    stats = study_statistics(table, study.comparisons, list(study.grid), [], study.stats)
    html = write_study_report(study, tmp_path, table, stats, Summary()).read_text()
    return html, stats


def test_small_n_says_too_few_instead_of_testing(tmp_path: Path) -> None:
    study = _study()
    html, stats = _report(tmp_path, _table(2), study)
    rows = comparisons_rows(stats, 3)
    assert rows[0]["cohen_d"] == "n/a (n < 3)" and rows[0]["t_p_holm"] == "n/a (n < 3)"
    assert "[" not in rows[0]["mean_diff"]  # no interval below min_n
    assert "n/a (n &lt; 3)" in html
    svg = next((tmp_path / "figures").glob("comparison-*.svg")).read_text()
    assert "too few to test" in svg and "first-layer strategy" in svg and "Dice" in svg


def test_enough_n_shows_intervals_and_zero_sd_is_named(tmp_path: Path) -> None:
    html, stats = _report(tmp_path, _table(4), _study())
    row = comparisons_rows(stats, 3)[0]
    assert "[" in row["mean_diff"] and row["cohen_d"] not in ("n/a (n < 3)", "n/a (sd ≈ 0)")
    flat = _table(4, spread=0.0)
    stats = study_statistics(flat, _study().comparisons, ["channel_init", "seed"], [], StatsSettings())
    assert comparisons_rows(stats, 3)[0]["cohen_d"] == "n/a (sd ≈ 0)"


def test_exports_parse_and_page_uses_the_shared_stylesheet(tmp_path: Path) -> None:
    from importlib.resources import files

    html, stats = _report(tmp_path, _table(4), _study())
    for name in ("comparisons.csv", "summary.csv"):
        rows = list(csv.DictReader((tmp_path / name).open()))
        assert rows and f'href="{name}"' in html
    assert float(list(csv.DictReader((tmp_path / "comparisons.csv").open()))[0]["n"]) == 4
    pngs = sorted((tmp_path / "figures").glob("*.png"))
    assert len(pngs) == 2
    for png in pngs:
        assert ET.parse(png.with_suffix(".svg")).getroot().tag.endswith("svg")
    assert list((tmp_path / "figures").glob("profile-*.csv"))
    css = files("slicewise.diagnostics").joinpath("templates/style.css").read_text()
    assert css.strip() in html
    assert "class=text" in html  # the notes column wraps


def test_labels() -> None:
    assert label("dice") == "Dice" and label("ma") == "mirror asymmetry (MA)"
    assert label("channel_init") == "first-layer strategy" and label("some_axis") == "some axis"


@pytest.mark.parametrize("n", [1, 2])
def test_no_error_bars_below_min_n(n: int) -> None:
    from slicewise.studies.report import ci_errors

    e = ci_errors([0.5, 0.6], [-0.5, 0.1], [1.4, 0.9], [n, 5], 3)
    assert (e[:, 0] == 0).all() and (e[:, 1] > 0).all()
