"""Shared fixtures. Tests that need ../shared/data skip with a reason when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("SLICEWISE_NO_PROGRESS", "1")
os.environ.setdefault("SLICEWISE_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SLICEWISE_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (ISBI 2012, MoNuSeg subset); skips the test when it is absent."""
    if not (SHARED_DATA / "isbi2012" / "train-volume.tif").is_file():
        pytest.skip(f"real data not available: {SHARED_DATA} is absent (set SLICEWISE_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def isbi_crop(shared_data: Path) -> tuple[np.ndarray, np.ndarray]:
    """ISBI 2012 raw and labels, slices 0-9, 128x128 crop at the centre (uint8)."""
    import tifffile

    raw = tifffile.imread(shared_data / "isbi2012" / "train-volume.tif")[:10, 192:320, 192:320]
    lab = tifffile.imread(shared_data / "isbi2012" / "train-labels.tif")[:10, 192:320, 192:320]
    return raw, lab


@pytest.fixture(scope="session")
def phantom():
    """A small seeded synthetic EM phantom (16x96x96)."""
    from slicewise.data.synthetic import make_phantom

    return make_phantom(shape=(16, 96, 96), seed=0)


@pytest.fixture
def cli(capsys):
    """Run the ``slicewise`` command line in this process: ``cli([arg, ...])`` → (exit code, stdout, stderr);
    arguments are converted with ``str`` (paths welcome)."""
    from slicewise.cli import main

    def run(argv):
        try:
            main([str(a) for a in argv])
            code = 0
        except SystemExit as ex:
            code = ex.code if isinstance(ex.code, int) else (0 if ex.code is None else 1)
        out, err = capsys.readouterr()
        return code, out, err

    return run



@pytest.fixture(scope="session")
def load_script():
    """``load_script(path, name)``: import a script that is not part of the package (``benchmarks/*.py``)
    as module ``name``."""
    import importlib.util
    import sys

    def load(path: Path, name: str):
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return module

    return load
