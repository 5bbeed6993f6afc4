"""CPU smoke of the scale benchmark (benchmarks/scale.py) at a tiny size: one sequential run in its own process."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

SCALE = Path(__file__).resolve().parents[1] / "benchmarks" / "scale.py"


@pytest.fixture(scope="module")
def scale(load_script) -> ModuleType:
    return load_script(SCALE, "slicewise_scale_bench")


def test_synthetic_input_is_chunked_ngff_and_not_trivial(scale: ModuleType, tmp_path: Path) -> None:
    from slicewise.data.io import open_volume

    info = scale.make_input(tmp_path / "in.zarr", (3, 100, 130), chunks=(2, 64, 64))
    vol = open_volume(tmp_path / "in.zarr")
    assert vol.shape == (3, 100, 130) and vol.voxel_size == (30.0, 4.0, 4.0)
    a = vol[...]
    assert len(np.unique(a)) > 20 and (a < 44).mean() > 0.05  # cells of many intensities + dark membranes
    assert not np.array_equal(a[0], a[1])
    assert scale.make_input(tmp_path / "in.zarr", (3, 100, 130))["reused"] and info["bytes_on_disk"] > 0


def test_smoke_sequential_run(scale: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLICEWISE_NO_PROGRESS", "1")
    out = tmp_path / "scale.json"
    code = scale.main(
        [
            "--size",
            "4x64x96",
            "--runs",
            "seq",
            "--block",
            "4x64x64",
            "--tile",
            "64",
            "--workdir",
            str(tmp_path / "work"),
            "--out",
            str(out),
        ]
    )
    assert code == 0
    payload = json.loads(out.read_text())
    assert payload["meta"]["cores"] >= 1 and len(payload["meta"]["load_average_end"]) == 3
    (run,) = payload["runs"]
    assert run["kind"] == "seq" and run["out_mvoxels"] == pytest.approx(4 * 64 * 96 / 1e6, abs=0.01)
    for key in ("wall_s", "mvoxel_per_s", "peak_rss_mb", "formula_mb"):
        assert math.isfinite(run[key]) and run[key] > 0, key
    assert run["output_bytes_on_disk"] > 0
    assert not (tmp_path / "work").exists()  # deleted without --keep
