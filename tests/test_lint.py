"""The project's lint rules ([tool.ruff] in pyproject.toml) hold for the package, the tests and the benchmarks."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _ruff() -> list[str]:
    exe = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if Path(exe).is_file():
        return [exe]
    pytest.skip("ruff is not installed: pip install 'slicewise[test]' (ruff>=0.6)")


def test_ruff_finds_nothing() -> None:
    done = subprocess.run(
        [*_ruff(), "check", "--no-cache", "--output-format", "concise", "slicewise", "tests", "benchmarks"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, f"ruff findings (fix them, or `ruff check --fix`):\n{done.stdout}{done.stderr}"
