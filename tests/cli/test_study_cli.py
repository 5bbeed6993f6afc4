"""``slicewise study``: mistakes in the study file or its overrides and ``--list`` need no torch (running cells
does); the study file is read before the runner (training, cells) is imported."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

HEAVY = {"torch", "timm", "lightning", "pytorch_lightning"}


def _run(args: list[str], cwd: Path) -> tuple[int, list[str], set[str], str]:
    """(exit status, stderr lines that are not import times, top-level packages imported, stdout)."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "slicewise.cli", *args],
        cwd=cwd,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    imported = {m.group(1).split(".")[0] for m in re.finditer(r"^import time:.*\|\s*([\w.]+)\s*$", out.stderr, re.M)}
    lines = [ln for ln in out.stderr.splitlines() if not ln.startswith("import time:")]
    return out.returncode, lines, imported, out.stdout


def test_a_mistyped_study_key_is_one_line_before_torch(tmp_path: Path) -> None:
    rc, lines, imported, stdout = _run(["study", "bias", "--smoke", "--set", "grdi=3"], tmp_path)
    assert rc == 2 and len(lines) == 1 and "unknown key 'grdi' (did you mean 'grid'?)" in lines[0], lines
    assert not imported & HEAVY and stdout == ""
    assert not (tmp_path / "runs").exists()


def test_list_needs_no_torch(tmp_path: Path) -> None:
    rc, lines, imported, stdout = _run(["study", "bias", "--smoke", "--list"], tmp_path)
    assert rc == 0 and lines == [], lines
    assert re.fullmatch(r"study bias: (\d+) cells: 0 done, 0 failed, \1 pending", stdout.splitlines()[-1]), stdout
    assert not imported & HEAVY
