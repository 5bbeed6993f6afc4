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


def test_no_function_is_above_complexity_20() -> None:
    """Readable units: radon's cyclomatic complexity of every function and method is at most 20."""
    radon = pytest.importorskip("radon.complexity", reason="radon is not installed: pip install 'slicewise[test]'")
    too_complex = []
    for path in sorted((REPO / "slicewise").rglob("*.py")):
        for block in radon.cc_visit(path.read_text(encoding="utf-8")):
            items = [block, *getattr(block, "methods", []), *getattr(block, "closures", [])]
            too_complex += [
                f"{path.relative_to(REPO)}:{b.lineno} {b.name} ({b.complexity})" for b in items if b.complexity > 20
            ]
    assert not too_complex, "split these functions (complexity > 20):\n" + "\n".join(too_complex)
