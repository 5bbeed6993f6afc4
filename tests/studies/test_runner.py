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
    study = _study(
        tmp_path, extras={"log": str(tmp_path / "calls.log"), "fail": [bad], "fail_flag": str(tmp_path / "FAIL")}
    )
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


def _fake_gpus(monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    """Make this process see ``n`` CUDA devices (the children run CPU-only fake cells)."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: n)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def test_parallel_processes_one_per_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_gpus(monkeypatch, 2)
    out = tmp_path / "out"
    lines: list[str] = []
    s = run_study(_study(tmp_path), out, smoke=True, cells="0-2", gpus=["0", "1"], echo=lines.append)
    assert len(s.done) == 3 and len(_calls(tmp_path)) == 3
    started = [ln.split(" on GPU ")[1] for ln in lines if " on GPU " in ln]
    assert len(started) == 3 and set(started[:2]) == {"0", "1"}
    seen = [
        json.loads((out / "cells" / c.id / "result.json").read_text())["info"]["cuda_visible_devices"] for c in s.done
    ]
    assert sorted(seen) == sorted(started)
    assert (out / "report.html").is_file() and (out / "cells" / s.done[0].id / "log.txt").is_file()


def test_cli_list_and_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from slicewise.cli import main

    out = tmp_path / "out"
    args = ["study", str(_study(tmp_path)), "--smoke", "--out", str(out)]
    r = subprocess.run(
        [sys.executable, "-m", "slicewise.cli", *args, "--cells", "0-1"], capture_output=True, text=True, env=os.environ
    )
    assert r.returncode == 0, r.stderr
    assert "2 done, 0 failed, 4 pending" in r.stdout
    main([*args, "--list"])
    listing = capsys.readouterr().out.splitlines()
    assert [ln.split()[1] for ln in listing[:6]] == ["done", "done", "pending", "pending", "pending", "pending"]
    with pytest.raises(SystemExit) as ex:
        main([*args, "--cells", "99"])
    err = capsys.readouterr().err
    assert ex.value.code == 2 and err.startswith("error:") and "Traceback" not in err


def test_reversed_cell_range_is_named() -> None:
    with pytest.raises(ConfigError, match=r"the range 5-2 is reversed: write it low-high, 2-5"):
        parse_cells("0,5-2", 10)


def test_gpus_must_be_existing_cuda_devices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from slicewise.studies.execute import parse_gpus

    _fake_gpus(monkeypatch, 0)
    out = tmp_path / "new" / "out"
    with pytest.raises(ConfigError, match="no usable CUDA GPU"):
        run_study(_study(tmp_path), out, gpus="0", echo=lambda _: None)
    assert not (tmp_path / "new").exists() and not _calls(tmp_path)  # refused before any folder or cell
    _fake_gpus(monkeypatch, 2)
    assert parse_gpus("1, 0") == ["1", "0"] and parse_gpus(None) == [] and parse_gpus(["0"]) == ["0"]
    for spec, match in (
        ("x,y", "'x' is not a GPU index"),
        ("-1", "not a GPU index"),
        ("0,,1", "not a GPU index"),
        ("2", "GPU 2 does not exist here; the GPUs are 0, 1"),
        ("1,01", "GPU 1 is listed twice"),
    ):
        with pytest.raises(ConfigError, match=match):
            parse_gpus(spec)
    monkeypatch.setenv(
        "CUDA_VISIBLE_DEVICES", "4,5"
    )  # children get CUDA_VISIBLE_DEVICES=<index>: the visible ids count
    assert parse_gpus("5") == ["5"]
    with pytest.raises(ConfigError, match="GPU 0 does not exist here; the GPUs are 4, 5"):
        parse_gpus("0")


def test_report_only_needs_finished_cells_and_a_report(tmp_path: Path) -> None:
    out = tmp_path / "typo"
    with pytest.raises(
        InputError, match=r"typo holds no finished cells of study toy: run the study first, or check --out"
    ):
        run_study(_study(tmp_path), out, report_only=True, echo=lambda _: None)
    assert not out.exists()
    with pytest.raises(ConfigError, match="--report-only and --no-report contradict"):
        run_study(_study(tmp_path), out, report_only=True, report=False, echo=lambda _: None)
    run_study(_study(tmp_path), out, cells="0", report=False, echo=lambda _: None)
    s = run_study(_study(tmp_path), out, report_only=True, echo=lambda _: None)
    assert len(s.done) == 1 and len(s.pending) == 11 and (out / "report.html").is_file()


@pytest.mark.parametrize("problem", ["missing data", "unknown cell kind"])
def test_a_run_refused_before_its_first_cell_leaves_no_folder(tmp_path: Path, problem: str) -> None:
    extra = {"requires": ["isbi2012/train-volume.tif"]} if problem == "missing data" else {"cell": "nosuch"}
    out = tmp_path / "a" / "b" / "out"
    with pytest.raises((InputError, ConfigError)):
        run_study(_study(tmp_path, **extra), out, echo=lambda _: None)
    assert not (tmp_path / "a").exists()
    existing = tmp_path / "kept"
    (existing / "cells").mkdir(parents=True)
    with pytest.raises((InputError, ConfigError)):
        run_study(_study(tmp_path, **extra), existing, echo=lambda _: None)
    assert (existing / "cells").is_dir()  # a folder the run did not create is left alone


def test_cli_study_flags_and_wrong_files_are_one_line(tmp_path: Path, cli) -> None:
    study = _study(tmp_path)
    code, _, err = cli(["study", study, "--report-only", "--no-report", "--out", tmp_path / "o"])
    assert code == 2 and "contradict" in err and not (tmp_path / "o").exists()
    code, _, err = cli(["study", study, "--report-only", "--out", tmp_path / "o"])
    assert code == 2 and "holds no finished cells" in err and not (tmp_path / "o").exists()
    code, _, err = cli(["study", study, "--cells", "5-2", "--out", tmp_path / "o"])
    assert code == 2 and "5-2 is reversed" in err
    train = tmp_path / "tiny.yaml"
    train.write_text(
        "model: {encoder: resnet18, weights: random, classes: 3}\ntrainer: {max_steps: 2}\n"
        "data: {synthetic: {shape: [16, 64, 64]}}\n" + "# padding\n" * 50
    )
    code, _, err = cli(["study", train])
    assert code == 2 and "not a study file" in err and f"slicewise train {train}" in err
    assert "resnet18" not in err and len(err.strip().splitlines()) == 1  # the config is not dumped
    code, _, err = cli(["study", tmp_path])
    assert code == 2 and "is a folder, not a study file" in err


def test_missing_required_study_key_is_named_without_dumping_the_file(tmp_path: Path) -> None:
    spec = yaml.safe_load(_study(tmp_path).read_text())
    del spec["name"]
    spec["extras"]["padding"] = "x" * 500
    p = tmp_path / "noname.yaml"
    p.write_text(yaml.safe_dump(spec))
    with pytest.raises(ConfigError) as err:
        load_study(p)
    assert str(err.value) == "noname.yaml: the required key 'name' is missing: add it"


def test_duplicate_keys_in_a_study_file_are_refused(tmp_path: Path) -> None:
    p = _study(tmp_path)
    p.write_text(p.read_text() + "name: other\n")
    with pytest.raises(ConfigError, match=r"the key 'name' appears twice \(lines \d+ and \d+\)"):
        load_study(p)


def test_a_folder_named_like_a_packaged_study_does_not_hide_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bias").mkdir()  # e.g. `slicewise study bias --out bias`
    assert load_study("bias").name == "bias"
    (tmp_path / "mine").mkdir()
    with pytest.raises(InputError, match="study mine is a folder, not a study file"):
        load_study("mine")
