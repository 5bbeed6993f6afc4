"""A typo in a path or a key is one ``error:`` line within about a second: the CLI imports only the invoked
command's module and checks arguments before torch, timm or Lightning are imported (``python -X importtime``
lists every module a run imported); ``slicewise --version``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import slicewise
from slicewise.cli import _COMMAND_MODULES, _invoked

HEAVY = {"torch", "timm", "lightning", "triton", "torchvision", "captum"}


def _run(args: list[str], cwd: Path) -> tuple[int, list[str], set[str], str]:
    """(exit status, stderr lines that are not import times, top-level packages imported, stdout)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "slicewise.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    imported = {m.group(1).split(".")[0] for m in re.finditer(r"^import time:.*\|\s*([\w.]+)\s*$", out.stderr, re.M)}
    lines = [ln for ln in out.stderr.splitlines() if not ln.startswith("import time:")]
    return out.returncode, lines, imported, out.stdout


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """A folder with a file named like a model (its content does not matter: it is never loaded) and a config."""
    (tmp_path / "model.pt").write_bytes(b"not read")
    (tmp_path / "config.yaml").write_text("trainer:\n  max_steps: 2\n")
    return tmp_path


CASES = {
    "predict: missing model": (["predict", "MISSING.pt", "in.tif", "out.zarr"], "model file MISSING.pt does not exist"),
    "predict: missing input": (
        ["predict", "model.pt", "MISSING.tif", "out.zarr", "--threads", "1"],
        "input MISSING.tif does not exist",
    ),
    "predict: missing HDF5 input": (
        ["predict", "model.pt", "MISSING.h5:raw", "out.zarr"],
        "input MISSING.h5 does not exist",
    ),
    "train: missing config": (["train", "MISSING.yaml"], "config file MISSING.yaml does not exist"),
    "train: mistyped key": (["train", "config.yaml", "trainer.max_stepz=3"], "unknown key 'trainer.max_stepz'"),
    "train: missing data": (["train", "data.raw=MISSING.tif"], "input MISSING.tif does not exist"),
    "evaluate: missing prediction": (["evaluate", "MISSING.tif", "gt.tif"], "input MISSING.tif does not exist"),
    "model info: missing model": (["model", "info", "MISSING.pt"], "model file MISSING.pt does not exist"),
    "audit attribution: missing model": (["audit", "attribution", "MISSING.pt", "config.yaml"], "config.yaml"),
    "audit weights: a file as the encoder": (["audit", "weights", "MISSING.pt"], "an encoder name is expected"),
    "pretrain: missing volume": (["pretrain", "MISSING.tif", "--out", "out.zarr"], "MISSING.tif"),
    "export: missing model": (
        ["export", "bioimageio", "MISSING.pt", "out.zip"],
        "model file MISSING.pt does not exist",
    ),
    "study: missing study file": (["study", "MISSING.yaml", "--smoke"], "study file MISSING.yaml does not exist"),
    "demo: no steps": (["demo", "--steps", "0"], "--steps 0"),
    "demo: unknown strategy": (["demo", "--strategy", "rgbb"], "--strategy rgbb"),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_mistakes_are_reported_before_torch_is_imported(case: str, files: Path) -> None:
    args, expected = CASES[case]
    rc, lines, imported, stdout = _run(args, files)
    assert rc == 2, lines
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], lines
    assert not imported & HEAVY, f"imported {sorted(imported & HEAVY)} before reporting {lines}"
    assert stdout == ""
    assert not (files / "out.zarr").exists() and not (files / "out.zip").exists()


def test_only_the_invoked_command_module_is_imported(files: Path) -> None:
    code = (
        "import sys\nfrom slicewise.cli import main\ntry:\n    main(['evaluate', 'MISSING.tif', 'gt.tif'])\n"
        "except SystemExit as ex:\n"
        "    print(ex.code, *sorted(m for m in sys.modules if m.startswith('slicewise.cli.')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=files, capture_output=True, text=True, timeout=120, check=False
    )
    assert out.stdout.split() == ["2", "slicewise.cli.evaluate"], out.stdout + out.stderr[-2000:]
    assert _invoked(["evaluate", "a", "b"]) == "evaluate" and _invoked(["study", "init", "bias"]) == "study"
    assert _invoked(["--help"]) is None and _invoked(["--version"]) is None and _invoked(["no-such"]) is None
    assert _invoked(["data", "info", "x"]) == "data" and set(_COMMAND_MODULES) >= {"predict", "train", "evaluate"}


def test_version(files: Path) -> None:
    rc, lines, imported, stdout = _run(["--version"], files)
    assert rc == 0 and lines == [] and not imported & HEAVY
    assert stdout == f"slicewise {slicewise.__version__}\n"
    assert re.fullmatch(r"slicewise \d+\.\d+\.\d+\n", stdout)


def test_threads_are_applied_when_torch_is_first_imported() -> None:
    """``--threads`` must not import torch itself: the hook runs configure_threads right after ``import torch``."""
    code = (
        "import os, sys\nfrom slicewise.cli import _configure_threads_with_torch\n_configure_threads_with_torch(1)\n"
        "assert 'torch' not in sys.modules and os.environ['OMP_NUM_THREADS'] == '1'\n"
        "os.environ['OMP_NUM_THREADS'] = '2'  # torch would start with 2 threads: only the hook can make it 1\n"
        "import torch\n"
        "print(torch.get_num_threads(), any(type(f).__name__ == '_AfterTorchImport' for f in sys.meta_path))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["1", "False"]  # applied, and the hook removed itself
