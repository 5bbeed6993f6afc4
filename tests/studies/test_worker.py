"""The ``--gpus`` child process: ``python -m slicewise.studies.worker ARGS`` runs ``run_study(**ARGS)``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from slicewise.studies.execute import WORKER, worker_command
from slicewise.studies.worker import main

HERE = Path(__file__).parent


def _study(tmp_path: Path) -> Path:
    spec = {
        "name": "toy",
        "cell": "fake_cells:fake_cell",
        "data_root": str(tmp_path),
        "grid": {"channel_init": ["rgb", "uniform"], "seed": [0, 1]},
        "extras": {"log": str(tmp_path / "calls.log"), "fail": [], "fail_flag": str(tmp_path / "FAIL")},
    }
    p = tmp_path / "toy.yaml"
    p.write_text(yaml.safe_dump(spec))
    return p


def test_the_command_names_the_worker_module_and_run_study_arguments(tmp_path: Path) -> None:
    cmd = worker_command("toy.yaml", tmp_path / "out", 3, True, ["seed=[0]"], tmp_path)
    assert cmd[1:3] == ["-m", WORKER] and len(cmd) == 4
    assert json.loads(cmd[3]) == {
        "source": "toy.yaml",
        "out": str(tmp_path / "out"),
        "cells": "3",
        "smoke": True,
        "overrides": ["seed=[0]"],
        "data_root": str(tmp_path),
        "report": False,
    }


def test_runs_the_cell_it_is_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(HERE))
    out = tmp_path / "out"
    cmd = worker_command(str(_study(tmp_path)), out, 2, False, [], tmp_path)
    assert main(cmd[3:]) == 0
    assert (tmp_path / "calls.log").read_text().split() == [p.parent.name for p in out.glob("cells/*/result.json")]
    assert not (out / "report.html").exists()  # the parent aggregates


@pytest.mark.parametrize("argv", [[], ["not json"], ["[1, 2]"], ['{"out": "x"}'], ["{}", "{}"]])
def test_bad_arguments_are_one_line_and_status_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("error: ") and err[1].startswith("usage: python -m slicewise.studies.worker")


def test_a_study_error_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([json.dumps({"source": str(tmp_path / "missing.yaml")})]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.splitlines()) == 1 and "Traceback" not in err
