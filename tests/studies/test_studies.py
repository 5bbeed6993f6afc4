"""The four packaged studies at smoke scale: real cells (train, predict, evaluate, audit), tables,
report, and a rerun that trains nothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import slicewise.training
from slicewise.studies.execute import run_study
from slicewise.studies.grid import grid_cells
from slicewise.studies.schema import load_study


def _no_training(*args, **kwargs):
    raise AssertionError("a finished study must not train again")


def _smoke(name: str, out: Path, data_root: Path | None) -> pd.DataFrame:
    lines: list[str] = []
    s = run_study(name, out, smoke=True, data_root=data_root, echo=lines.append)
    errors = {c.id: (out / "cells" / c.id / "error.txt").read_text()[-600:] for c in s.failed}
    assert not errors, errors
    assert not s.pending and len(s.done) == len(grid_cells(load_study(name, smoke=True)))
    for f in ("results.csv", "stats.csv", "stats.json", "report.html"):
        assert (out / f).is_file(), f
    return pd.read_csv(out / "results.csv", dtype={"skips": str})


def _rerun_does_nothing(name: str, out: Path, data_root: Path | None, monkeypatch: pytest.MonkeyPatch) -> None:
    mtimes = {p: p.stat().st_mtime_ns for p in out.glob("cells/*/result.json")}
    monkeypatch.setattr(slicewise.training, "train", _no_training)
    lines: list[str] = []
    s = run_study(name, out, smoke=True, data_root=data_root, echo=lines.append)
    assert not s.failed and not s.pending
    assert {p: p.stat().st_mtime_ns for p in out.glob("cells/*/result.json")} == mtimes
    assert "failed" not in " ".join(lines[1:-1])


@pytest.fixture(scope="module")
def bias_run(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    out = tmp_path_factory.mktemp("bias")
    return out, _smoke("bias", out, shared_data)


def test_bias_smoke_table_and_report(bias_run: tuple[Path, pd.DataFrame]) -> None:
    out, res = bias_run
    weights = res[(res.metric == "share") & (res.stage == "weights")]
    rgb = weights[weights.channel_init == "rgb"].groupby("slice")["value"].mean().to_numpy()
    np.testing.assert_allclose(rgb, [0.263, 0.525, 0.212], atol=2e-3)  # real Lite0 stem on pseudo-RGB
    ma = res[res.metric == "ma"].groupby(["channel_init", "stage"])["value"].max()
    assert ma["uniform", "before"] == pytest.approx(0, abs=1e-6)  # identical slices, identical kernels
    assert ma["mirror", "after"] == pytest.approx(0, abs=1e-6)  # mirror parametrisation survives training
    assert ma["rgb", "before"] > 0.05
    dice = res[res.metric == "dice"]["value"]
    assert dice.between(0, 1).all() and len(dice) == 6
    stats = pd.read_csv(out / "stats.csv")
    assert set(stats["metric"]) == {"dice", "are", "ma"} and (stats["n"] == 2).all()
    assert stats["t_p"].isna().all() and stats["note"].str.contains("no test").all()  # 2 seeds: NaN p, noted
    html = (out / "report.html").read_text()
    assert "saliency slice shares" in html and "membrane Dice vs rgb" in html
    assert (out / "figures" / "profile-00-share-slice.png").stat().st_size > 5000


def test_bias_rerun_trains_nothing(
    bias_run: tuple[Path, pd.DataFrame], shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, _ = bias_run
    _rerun_does_nothing("bias", out, shared_data, monkeypatch)
    result = json.loads(next(out.glob("cells/*/result.json")).read_text())
    assert result["smoke"] and result["fingerprint"]


def test_bias_missing_data_is_one_line_error(tmp_path: Path) -> None:
    from slicewise.errors import InputError

    with pytest.raises(InputError, match="--data-root"):
        run_study("bias", tmp_path / "o", smoke=True, data_root=tmp_path / "nowhere", echo=lambda _: None)


def test_skips_smoke(shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    res = _smoke("skips", tmp_path, shared_data)
    iou = res[res.metric == "iou"]
    assert set(iou["test"]) == {"in_domain", "shifted"} and set(iou["shift"]) == {"none", "brightness=0.2", "gamma=2"}
    hel = res[res.metric == "hellinger"]  # bias-corrected: raw − null, may dip below 0
    assert hel["value"].between(-1, 1).all() and hel["layer"].nunique() >= 4
    raw, null = (res[res.metric == m].reset_index()["value"] for m in ("hellinger_raw", "hellinger_null"))
    assert raw.between(0, 1).all() and null.between(0, 1).all()
    np.testing.assert_allclose(hel.reset_index()["value"], raw - null, atol=1e-12)
    layers = pd.read_csv(tmp_path / "layer_distances.csv")
    assert list(layers.columns[-4:]) == ["raw", "null", "corrected", "rank"]
    stats = pd.read_csv(tmp_path / "stats.csv", dtype={"level": str, "baseline": str})
    assert set(stats["level"]) == {"0111", "0000"} and (stats["baseline"] == "1111").all()
    _rerun_does_nothing("skips", tmp_path, shared_data, monkeypatch)


def test_pretraining_smoke(shared_data: Path, tmp_path: Path) -> None:
    if not (shared_data / "monuseg2018_subset" / "images").is_dir():
        pytest.skip(f"MoNuSeg subset not available under {shared_data}")
    res = _smoke("pretraining", tmp_path, shared_data)
    dice = res[res.metric == "dice"]
    assert set(dice["test"]) == {"in_domain", "out_of_domain"}
    ood = set(dice[dice.test == "out_of_domain"]["image"].str[:7])
    assert ood == {"TCGA-KB"}  # held-out site never trained on
    stats = pd.read_csv(tmp_path / "stats.csv")
    assert set(stats["fraction"]) == {0.25, 1.0}  # one test per training fraction
    assert (stats[stats.comparison.str.contains("in-domain")]["n"] == 6).all()  # 2 seeds x 3 images


def test_emsam_smoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    res = _smoke("emsam", tmp_path, None)
    assert set(res["metric"]) == {"are", "voi_split", "voi_merge", "ap50", "ap75", "ap"}
    assert set(res["encoder"]) == {"cnn", "sam"}
    are = res[res.metric == "are"]["value"]
    assert are.between(0, 1).all()
    _rerun_does_nothing("emsam", tmp_path, None, monkeypatch)
