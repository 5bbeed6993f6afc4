"""Grid runner: cells, resume, failures, job-array selection, parallel processes, aggregation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from slicewise.errors import ConfigError, InputError
from slicewise.studies.execute import run_study
from slicewise.studies.grid import grid_cells, parse_cells
from slicewise.studies.schema import load_study, packaged_studies

HERE = Path(__file__).parent


def _study(tmp_path: Path, **extra) -> Path:
    spec = {
        "name": "toy",
        "cell": "fake_cells:fake_cell",
        "data_root": str(tmp_path),
        "grid": {"channel_init": ["rgb", "uniform", "random"], "seed": [0, 1, 2, 3]},
        "extras": {"log": str(tmp_path / "calls.log"), "fail": [], "fail_flag": str(tmp_path / "FAIL")},
        "comparisons": [{"axis": "channel_init", "baseline": "rgb", "metric": "dice"}],
        "figures": [{"metric": "share", "x": "slice", "hue": "channel_init", "facet": "stage"}],
        "smoke": {"grid": {"seed": [0, 1]}},
    }
    spec.update(extra)
    p = tmp_path / "toy.yaml"
    p.write_text(yaml.safe_dump(spec))
    return p


@pytest.fixture(autouse=True)
def _fake_cells_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(HERE))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))


def _calls(tmp_path: Path) -> list[str]:
    p = tmp_path / "calls.log"
    return p.read_text().split() if p.exists() else []


def test_grid_is_cartesian_product_last_axis_fastest(tmp_path: Path) -> None:
    cells = grid_cells(load_study(_study(tmp_path)))
    assert len(cells) == 12 and len({c.id for c in cells}) == 12
    assert cells[0].params == {"channel_init": "rgb", "seed": 0} and cells[1].params["seed"] == 1
    assert cells[4].params == {"channel_init": "uniform", "seed": 0}
    assert len(grid_cells(load_study(_study(tmp_path), smoke=True))) == 6


def test_parse_cells() -> None:
    assert parse_cells("0-3,7", 10) == [0, 1, 2, 3, 7]
    assert parse_cells(None, 3) == [0, 1, 2]
    with pytest.raises(ConfigError, match="0-9"):
        parse_cells("12", 10)
    with pytest.raises(ConfigError, match="ranges"):
        parse_cells("a-b", 10)


def test_run_resume_and_aggregate(tmp_path: Path) -> None:
    out = tmp_path / "out"
    lines: list[str] = []
    s = run_study(_study(tmp_path), out, echo=lines.append)
    assert len(s.done) == 12 and not s.failed and not s.pending
    assert lines[0].endswith("0 done, 0 failed, 12 pending") and any("12 done" in ln for ln in lines)
    assert len(_calls(tmp_path)) == 12
    res = pd.read_csv(out / "results.csv")
    assert set(res.columns) >= {"cell", "index", "channel_init", "seed", "slice", "stage", "metric", "value"}
    assert len(res) == 12 * 4 and (res["metric"] == "dice").sum() == 12
    stats = pd.read_csv(out / "stats.csv")
    assert set(stats["level"]) == {"uniform", "random"} and (stats["n"] == 4).all()
    assert stats.set_index("level").loc["random", "mean_diff"] == pytest.approx(-0.1, abs=0.02)
    assert {"t_p_holm", "w_p_holm", "cohen_d", "rank_biserial", "t_stat", "w_stat"} <= set(stats.columns)
    assert json.loads((out / "stats.json").read_text())[0]["n"] == 4
    html = (out / "report.html").read_text()
    assert "<img" in html and "uniform" in html
    pngs = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert any(p.startswith("comparison") for p in pngs) and any(p.startswith("profile") for p in pngs)
    mtimes = {p: p.stat().st_mtime_ns for p in out.glob("cells/*/result.json")}
    s2 = run_study(_study(tmp_path), out, echo=lines.append)
    assert len(s2.done) == 12 and len(_calls(tmp_path)) == 12  # nothing recomputed
    assert {p: p.stat().st_mtime_ns for p in out.glob("cells/*/result.json")} == mtimes


def test_failed_cell_is_recorded_and_retried(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (tmp_path / "FAIL").touch()
    bad = "channel_init-uniform__seed-1"
    study = _study(tmp_path, extras={"log": str(tmp_path / "calls.log"), "fail": [bad], "fail_flag": str(tmp_path / "FAIL")})
    s = run_study(study, out, smoke=True, echo=lambda _: None)
    assert [c.id for c in s.failed] == [bad] and len(s.done) == 5
    assert "simulated failure" in (out / "cells" / bad / "error.txt").read_text()
    assert not (out / "cells" / bad / "result.json").exists()
    (tmp_path / "FAIL").unlink()
    s = run_study(study, out, smoke=True, echo=lambda _: None)
    assert len(s.done) == 6 and not s.failed and not (out / "cells" / bad / "error.txt").exists()
    assert _calls(tmp_path).count(bad) == 2 and len(_calls(tmp_path)) == 7


def test_cells_subset_and_changed_config(tmp_path: Path) -> None:
    out = tmp_path / "out"
    s = run_study(_study(tmp_path), out, cells="0-1,5", report=False, echo=lambda _: None)
    assert [c.index for c in s.done] == [0, 1, 5] and not (out / "results.csv").exists()
    changed = _study(tmp_path, base={"train": {"steps": 9}})
    with pytest.raises(ConfigError, match="another study configuration"):
        run_study(changed, out, cells="0", echo=lambda _: None)
    s = run_study(changed, out, cells="0", overwrite=True, echo=lambda _: None)
    assert len(s.done) == 1 and _calls(tmp_path).count("channel_init-rgb__seed-0") == 2


def test_study_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="baseline"):
        load_study(_study(tmp_path, comparisons=[{"axis": "channel_init", "baseline": "bgr", "metric": "dice"}]))
    with pytest.raises(ConfigError, match="not a grid axis"):
        load_study(_study(tmp_path, comparisons=[{"axis": "encoder", "baseline": "x", "metric": "dice"}]))
    with pytest.raises(ConfigError, match="unknown key"):
        load_study(_study(tmp_path, grdi={}))
    with pytest.raises(InputError, match="packaged"):
        load_study("no-such-study")
    with pytest.raises(InputError, match="--data-root"):
        run_study(_study(tmp_path, requires=["isbi2012/train-volume.tif"]), tmp_path / "o", echo=lambda _: None)
    assert {"bias", "skips", "pretraining", "emsam"} <= set(packaged_studies())


def test_parallel_processes_one_per_gpu(tmp_path: Path) -> None:
    out = tmp_path / "out"
    lines: list[str] = []
    s = run_study(_study(tmp_path), out, smoke=True, cells="0-2", gpus=["0", "1"], echo=lines.append)
    assert len(s.done) == 3 and len(_calls(tmp_path)) == 3
    started = [ln.split(" on GPU ")[1] for ln in lines if " on GPU " in ln]
    assert len(started) == 3 and set(started[:2]) == {"0", "1"}
    seen = [json.loads((out / "cells" / c.id / "result.json").read_text())["info"]["cuda_visible_devices"] for c in s.done]
    assert sorted(seen) == sorted(started)
    assert (out / "report.html").is_file() and (out / "cells" / s.done[0].id / "log.txt").is_file()


def test_cli_list_and_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from slicewise.cli import main

    out = tmp_path / "out"
    args = ["study", str(_study(tmp_path)), "--smoke", "--out", str(out)]
    r = subprocess.run([sys.executable, "-m", "slicewise.cli", *args, "--cells", "0-1"], capture_output=True, text=True,
                       env=os.environ)
    assert r.returncode == 0, r.stderr
    assert "2 done, 0 failed, 4 pending" in r.stdout
    main([*args, "--list"])
    listing = capsys.readouterr().out.splitlines()
    assert [ln.split()[1] for ln in listing[:6]] == ["done", "done", "pending", "pending", "pending", "pending"]
    with pytest.raises(SystemExit) as ex:
        main([*args, "--cells", "99"])
    err = capsys.readouterr().err
    assert ex.value.code == 2 and err.startswith("error:") and "Traceback" not in err
