"""Block-wise prediction and segmentation on a full disk: refused before computing when the output cannot fit,
one line and a resumable partial output when the disk fills up mid-run, never a crash or a published partial file."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from slicewise.data.io import write_volume
from slicewise.data.io.predictions import read_prediction
from slicewise.data.io.stores import PredictionWriter, partial_path, state_path
from slicewise.errors import WriteError
from slicewise.infer.blocks import Plan
from slicewise.infer.predict import predict_to

KW = dict(tile=16, batch_size=4, progress=False, device="cpu", block=(2, 40, 52))


@pytest.fixture
def raw_file(tmp_path, small_volume):
    return write_volume(tmp_path / "in.h5", small_volume, key="raw")


@pytest.mark.parametrize("name", ["p.tif", "p.h5", "p.zarr"])
def test_a_prediction_that_cannot_fit_is_refused_before_any_block_is_computed(stub, raw_file, small_disk, name):
    d = small_disk("1m")
    big = np.zeros((40, 400, 52), np.uint8)  # 3 float32 channels × 40×400×52 ≈ 10 MB
    src = write_volume(raw_file.parent / "big.h5", big, key="raw")
    model = stub()
    with pytest.raises(WriteError, match=rf"cannot write output {d / name}: it needs about 1\d\.\d MB but .* free"):
        predict_to(model, src, d / name, key="raw", **KW)
    assert model.calls == 0 and sorted(p.name for p in d.iterdir()) == []


@pytest.mark.parametrize("name", ["p.tif", "p.h5", "p.zarr"])
def test_a_disk_that_fills_up_mid_run_keeps_the_partial_output_and_the_rerun_finishes_it(
    stub, raw_file, small_disk, tmp_path, monkeypatch, name
):
    model = stub()
    ref = np.asarray(
        read_prediction(
            predict_to(model, raw_file, tmp_path / f"ref{os.path.splitext(name)[1]}", key="raw", **KW)
        ).probabilities[...]
    )
    d = small_disk("1m")
    out, filler = d / name, d / ".filler"
    mark = PredictionWriter.mark_done

    def mark_then_fill(self, index):
        mark(self, index)
        if index == 1 and not filler.exists():
            small_disk.fill(d)

    monkeypatch.setattr(PredictionWriter, "mark_done", mark_then_fill)
    if name.endswith(".zarr"):  # zarr allocates chunk by chunk: the next block meets the full disk
        with pytest.raises(WriteError, match=rf"cannot write output {out}: the disk is full"):
            predict_to(model, raw_file, out, key="raw", **KW)
        assert not out.exists() and partial_path(out).is_dir() and state_path(partial_path(out)).is_dir()
        assert PredictionWriter.reopen(partial_path(out), Plan.from_json).done() == {0, 1}
        filler.unlink()
    predict_to(model, raw_file, out, key="raw", **KW)  # TIFF / HDF5 reserved their space at creation: no failure
    np.testing.assert_array_equal(np.asarray(read_prediction(out).probabilities[...]), ref)
    assert not partial_path(out).exists()


@pytest.mark.parametrize("name", ["lab.tif", "lab.h5"])
def test_segment_into_a_full_disk_is_one_line_not_a_crash(tmp_path, small_disk, name):
    import h5py

    fg = (np.random.default_rng(3).random((8, 256, 256)) > 0.6).astype(np.float32)
    src = tmp_path / "prob.h5"
    with h5py.File(src, "w") as f:
        f["probabilities"] = np.stack([1 - fg, fg])
        f.attrs["channels"] = '["background", "foreground"]'
    d = small_disk("1m")
    r = subprocess.run(
        [sys.executable, "-m", "slicewise.cli", "segment", src, d / name],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=300,
    )
    assert r.returncode == 2, r.stderr[-2000:]
    assert r.stderr.strip().splitlines()[-1].startswith(f"error: cannot write output {d / name}: it needs about 2.1 MB")
    assert sorted(p.name for p in d.iterdir()) == []
