"""Study report structure (reads the HTML / CSV / JSON): cell status from the training logs and its exclusion
from the tests, provenance, per-seed values, training curves, natural order, the run's own levels, layer
distances with raw / null / corrected columns."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from slicewise.studies.aggregate import aggregate
from slicewise.studies.grid import cell_dir, grid_cells
from slicewise.studies.schema import Figure, Study
from slicewise.studies.stats import Comparison, StatsSettings

MASKS = ["1111", "0111", "0011", "0000"]
LAYERS = ["enc_s2", "enc_s4", "enc_s32", "dec_s16", "dec_s2", "dec_s1"]


def _study() -> Study:
    return Study(
        name="fake-skips",
        description="masks 1111 / 0111 / 0011 / 0001 / 0000 and a repeat strategy",
        cell="x:y",
        grid={"skips": MASKS, "seed": [0, 1, 2, 3]},
        comparisons=[Comparison(name="IoU vs full", axis="skips", baseline="1111", metric="iou")],
        figures=[Figure(metric="hellinger", x="layer", hue="skips"), Figure(metric="share", x="slice")],
        stats=StatsSettings(min_n=3),
    )


def _log(d: Path, learns: bool) -> None:
    log = d / "train" / "logs" / "version_0"
    log.mkdir(parents=True)
    rows = [{"step": s, "train/loss": (1.0 - 0.08 * s if learns else 0.72), "val/dice": ""} for s in range(10)]
    for s in (4, 9):
        rows.append({"step": s, "train/loss": "", "val/dice": (0.3 + 0.04 * s if learns else 0.0)})
    with (log / "metrics.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, ["step", "train/loss", "val/dice"])
        w.writeheader()
        w.writerows(rows)
    inputs = {
        "config": {
            "trainer": {"max_steps": 10},
            "data": {"patch_size": [64, 64], "batch_size": 2},
            "optim": {"lr": 0.001},
            "model": {"encoder": "tf_efficientnet_lite0", "weights": "imagenet"},
            "augment": {"flip": 0.5, "gamma_range": [0.75, 1.33]},
            "seed": 0,
        },
        "data": {"raw": {"shape": [21, 64, 64], "sample_sha256": "abc123"}},
    }
    (d / "train" / "inputs.json").write_text(json.dumps(inputs))


@pytest.fixture(scope="module")
def study_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Study]:
    out = tmp_path_factory.mktemp("fake")
    study = _study()
    rng = np.random.default_rng(0)
    for c in grid_cells(study):
        d = cell_dir(out, c)
        d.mkdir(parents=True)
        failed = c.params["skips"] == "0000" and c.params["seed"] in (0, 1)  # two no-skip cells never learn
        iou = 0.2 if failed else 0.6 + 0.05 * MASKS.index(c.params["skips"]) % 3 + rng.normal(0, 0.01)
        metrics = [{"metric": "iou", "value": iou}]
        metrics += [
            {"metric": m, "value": v, "layer": layer, "shift": "gamma=2"}
            for layer in LAYERS
            for m, v in (("hellinger_raw", 0.3), ("hellinger_null", 0.1), ("hellinger", 0.2))
        ]
        metrics += [{"metric": "share", "value": v, "slice": s} for s, v in enumerate([0.3, 0.4, 0.3])]
        (d / "result.json").write_text(
            json.dumps(
                {
                    "metrics": metrics,
                    "params": c.params,
                    "elapsed_s": 1.0,
                    "environment": {"versions": {"torch": "9.9"}, "python": "3.x"},
                }
            )
        )
        _log(d, learns=not failed)
    (cell_dir(out, grid_cells(study)[5])).joinpath("result.json").unlink()  # 0111 seed 1 crashed
    cell_dir(out, grid_cells(study)[5]).joinpath("error.txt").write_text("Traceback\nRuntimeError: boom\n")
    aggregate(study, out, grid_cells(study))
    return out, study


def test_status_column_and_failed_cells_left_out_of_the_tests(study_run: tuple[Path, Study]) -> None:
    out, _ = study_run
    res = pd.read_csv(out / "results.csv", dtype={"skips": str})
    status = res.groupby(["skips", "seed"])["status"].first()
    assert status["0000", 0] == status["0000", 1] == "failed-to-learn" and status["0000", 2] == "ok"
    assert status["0111", 1] == "error" and set(res["status"]) == {"ok", "failed-to-learn", "error"}
    stats = pd.read_csv(out / "stats.csv", dtype={"level": str})
    n = dict(zip(stats["level"], stats["n"]))
    assert n == {"0111": 3, "0011": 4, "0000": 2}  # error and failed-to-learn seeds not paired
    cells = pd.read_csv(out / "cells.csv", dtype={"skips": str})
    assert (cells["status"] == "failed-to-learn").sum() == 2 and "RuntimeError: boom" in " ".join(cells["reason"])
    html = (out / "report.html").read_text()
    assert "Excluded from the tests:" in html and "skips-0000__seed-0 (failed-to-learn" in html
    assert "val/dice stayed at 0 over all 2 validation checks" in html  # the stated reason, per seed


def test_stats_columns_raw_and_holm_side_by_side(study_run: tuple[Path, Study]) -> None:
    out, _ = study_run
    header = next(csv.reader((out / "stats.csv").open()))
    assert header.index("p_holm") == header.index("p_raw") + 1
    for col in ("w_p_min", "tost_p", "tost_p_holm", "mdd", "diff_low_adj", "diff_high_adj", "ci_adjustment", "verdict"):
        assert col in header, col
    html = (out / "report.html").read_text()
    assert "t-test p (raw)" in html and "t-test p (Holm)" in html and "Wilcoxon: smallest p at this n" in html
    assert "Bonferroni-simultaneous" in html and "detectable difference" in html


def test_provenance_file_and_section(study_run: tuple[Path, Study]) -> None:
    out, _ = study_run
    prov = json.loads((out / "provenance.json").read_text())
    cell = prov["cells"]["skips-1111__seed-0"]
    assert cell["training"]["steps"] == 10 and cell["training"]["lr"] == 0.001
    assert cell["training"]["augment"]["gamma_range"] == [0.75, 1.33]
    assert (
        cell["data_identity"]["raw"]["sample_sha256"] == "abc123" and cell["environment"]["versions"]["torch"] == "9.9"
    )
    assert prov["environment"]["versions"]["slicewise"]
    html = (out / "report.html").read_text()
    assert "<h2>Provenance</h2>" in html and "Environment of this report: slicewise" in html
    assert "gamma_range [0.75, 1.33]" in html and "abc123" in html and "torch 9.9" in html


def test_per_seed_points_curves_and_wrapping_tables(study_run: tuple[Path, Study]) -> None:
    out, _ = study_run
    svg = next((out / "figures").glob("comparison-*.svg")).read_text()
    assert svg.count('id="PathCollection_') >= 4  # one scatter of seed values per level (+ the failed crosses)
    curves = sorted((out / "figures").glob("curves-*.png"))
    assert curves and all(f'src="figures/{p.name}"' in (out / "report.html").read_text() for p in curves)
    html = (out / "report.html").read_text()
    assert ".table-wrap td, .table-wrap th { white-space: normal; overflow-wrap: anywhere; }" in html


def test_natural_order_and_layer_distances(study_run: tuple[Path, Study]) -> None:
    out, _ = study_run
    stats = pd.read_csv(out / "stats.csv", dtype={"level": str})
    assert list(stats["level"]) == ["0111", "0011", "0000"]
    layers = pd.read_csv(out / "layer_distances.csv", dtype={"skips": str})
    assert list(layers.columns[-4:]) == ["raw", "null", "corrected", "rank"]
    assert list(layers[layers.skips == "1111"]["layer"]) == LAYERS  # by stride, encoder then decoder
    assert list(dict.fromkeys(layers["skips"])) == MASKS
    np.testing.assert_allclose(layers["corrected"], layers["raw"] - layers["null"])
    prof = pd.read_csv(out / "figures" / "profile-00-hellinger-layer.csv", dtype={"skips": str})
    assert list(dict.fromkeys(prof["layer"])) == LAYERS and list(dict.fromkeys(prof["skips"])) == MASKS
    summary = pd.read_csv(out / "summary.csv", dtype={"skips": str})
    assert list(dict.fromkeys(summary["skips"])) == MASKS
    assert (
        "−1" in (out / "figures" / "profile-01-share-slice.svg").read_text()
        or "-1" in (out / "figures" / "profile-01-share-slice.svg").read_text()
    )


def test_header_lists_only_the_levels_of_this_run(study_run: tuple[Path, Study], tmp_path: Path) -> None:
    out, study = study_run
    from slicewise.studies.report import write_study_report
    from slicewise.studies.status import summarize

    table = pd.read_csv(out / "results.csv", dtype={"skips": str})
    html = write_study_report(
        study, out, table, pd.DataFrame(), summarize(out, grid_cells(study)), smoke=True
    ).read_text()
    head = html[html.index("<h1>") : html.index("<h2>")]
    assert "This run:</b> 16 cells; skip connections (skips): 1111, 0111, 0011, 0000; seed (seed): 0, 1, 2, 3" in head
    assert "0001" not in head and "repeat" not in head
