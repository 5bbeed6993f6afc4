"""``slicewise segment``: block-wise output equals scipy, ranges, one-line refusals, nothing half-written."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from scipy import ndimage as ndi

from slicewise.data.io import open_volume


@pytest.fixture
def probs(tmp_path):
    rng = np.random.default_rng(1)
    fg = ndi.binary_opening(rng.random((6, 24, 24)) < 0.45)
    p = np.where(fg, 0.8, 0.1).astype(np.float32)
    tifffile.imwrite(tmp_path / "fg.tif", p)
    return tmp_path, fg


@pytest.mark.parametrize("out", ["lab.zarr", "lab.h5", "lab.tif"])
def test_blockwise_labels_equal_scipy(probs, out, cli):
    folder, fg = probs
    code, stdout, _ = cli(["segment", str(folder / "fg.tif"), str(folder / out), "--block", "2,7,5"])
    ref, n = ndi.label(fg)
    assert code == 0 and f"{n} objects" in stdout
    np.testing.assert_array_equal(np.asarray(open_volume(folder / out)[...]), ref)


def test_z_range_and_roi(probs, cli):
    folder, fg = probs
    code, stdout, _ = cli(["segment", str(folder / "fg.tif"), str(folder / "z.zarr"), "--z", "2:5", "--block", "1,9,9"])
    assert code == 0 and "offset 2,0,0" in stdout
    np.testing.assert_array_equal(np.asarray(open_volume(folder / "z.zarr")[...]), ndi.label(fg[2:5])[0])
    code, _, _ = cli(["segment", str(folder / "fg.tif"), str(folder / "r.tif"), "--roi", "1:4,3:20,5:"])
    assert code == 0
    np.testing.assert_array_equal(np.asarray(open_volume(folder / "r.tif")[...]), ndi.label(fg[1:4, 3:20, 5:])[0])


@pytest.mark.parametrize(
    "make, extra, match",
    [
        (lambda: np.random.default_rng(0).integers(0, 256, (2, 8, 8)).astype(np.uint8), [], "not probabilities in"),
        (lambda: np.full((2, 8, 8), np.nan, np.float32), [], "NaN or Inf"),
        (lambda: np.full((2, 8, 8), 0.5, np.float32), ["--min-size", "-1"], "--min-size"),
        (lambda: np.full((2, 8, 8), 0.5, np.float32), ["--foreground-threshold", "2"], "--foreground-threshold"),
        (lambda: np.full((2, 8, 8), 0.5, np.float32), ["--min-distance", "0"], "--min-distance"),
        (lambda: np.full((2, 8, 8), 0.5, np.float32), ["--block", "0,4,4"], "--block"),
        (lambda: np.full((2, 8, 8), 0.5, np.float32), ["--block", "2,4"], "--block"),
        (lambda: np.full((2, 8, 8), 0.5, np.float32), ["--halo", "a"], "--halo"),
        (lambda: np.full((2, 8, 8), 0.5, np.float32), ["--z", "5:9"], "empty"),
        (lambda: np.full((2, 8, 8), 0.5, np.complex64), [], "dtype complex64"),
        (lambda: np.full((2, 8, 8), 200.0, np.float64), [], "(float64)"),
        (
            lambda: np.full((2, 8, 8, 3), 0.5, np.float32),
            ["--foreground-channel", "-1"],
            "foreground channel -1 is negative",
        ),
        (
            lambda: np.full((2, 8, 8, 3), 0.5, np.float32),
            ["--mode", "watershed", "--boundary-channel", "-1"],
            "boundary channel -1 is negative",
        ),
        (
            lambda: np.full((2, 8, 8, 3), 0.5, np.float32),
            ["--mode", "watershed", "--use", "distance", "--distance-channel", "-2"],
            "distance channel -2 is negative",
        ),
        (
            lambda: np.full((2, 8, 8), 0.5, np.float32),
            ["--mode", "watershed", "--use", "distance", "--seed-threshold", "-5"],
            "--seed-threshold",
        ),
    ],
)
def test_refusals_are_one_line_and_leave_nothing(tmp_path, make, extra, match, cli):
    a = make()
    tifffile.imwrite(tmp_path / "in.tif", a, metadata={"axes": "ZYXC"} if a.ndim == 4 else {})
    code, _, err = cli(["segment", str(tmp_path / "in.tif"), str(tmp_path / "out.zarr"), *extra])
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:") and match in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif"]


def test_watershed_with_halo_and_connectivity_match_the_api(tmp_path, cli):
    from slicewise.segment import segment

    rng = np.random.default_rng(2)
    fg = ndi.binary_opening(rng.random((4, 20, 20)) < 0.5)
    boundary = np.where(ndi.binary_erosion(fg) != fg, 0.9, 0.1)
    prob = np.stack([np.where(fg, 0.1, 0.9), np.where(fg, 0.9, 0.1), boundary]).astype(np.float32)
    tifffile.imwrite(
        tmp_path / "p.tif", np.moveaxis(prob, 0, -1), metadata={"axes": "ZYXC"}
    )  # channel-last, as predict writes TIFF
    code, _, err = cli(
        [
            "segment",
            str(tmp_path / "p.tif"),
            str(tmp_path / "w.h5"),
            "--mode",
            "watershed",
            "--boundary-channel",
            "2",
            "--block",
            "2,8,8",
            "--halo",
            "1,3,3",
            "--min-size",
            "3",
        ]
    )
    assert code == 0, err
    ref = segment(prob, mode="watershed", boundary_channel=2, block=(2, 8, 8), halo=(1, 3, 3), min_size=3)
    np.testing.assert_array_equal(np.asarray(open_volume(tmp_path / "w.h5")[...]), ref)
    code, _, err = cli(
        ["segment", str(tmp_path / "p.tif"), str(tmp_path / "c.zarr"), "--connectivity", "3", "--block", "3,7,7"]
    )
    assert code == 0, err
    np.testing.assert_array_equal(
        np.asarray(open_volume(tmp_path / "c.zarr")[...]), ndi.label(fg, np.ones((3, 3, 3)))[0]
    )


def test_segment_says_which_foreground_on_stderr(tmp_path, cli):
    import h5py

    fg = np.zeros((2, 12, 12), np.float32)
    fg[:, 2:6, 2:6] = 0.9
    with h5py.File(tmp_path / "p.h5", "w") as f:
        f["probabilities"] = np.stack([1 - fg, fg])
        f.attrs["channels"] = '["background", "membrane"]'
    code, out, err = cli(["segment", str(tmp_path / "p.h5"), str(tmp_path / "l.tif")])
    assert code == 0, err
    assert "foreground = channel 1 'membrane'" in err and "1 objects" in out and "foreground" not in out


@pytest.mark.parametrize("out", ["lab.tif", "lab.zarr", "lab.h5"])
def test_a_2d_probability_map_segments_to_one_slice(tmp_path, out, cli):
    fg = ndi.binary_opening(np.random.default_rng(4).random((24, 20)) < 0.5)
    tifffile.imwrite(tmp_path / "fg2d.tif", np.where(fg, 0.8, 0.1).astype(np.float32))
    code, stdout, err = cli(["segment", tmp_path / "fg2d.tif", tmp_path / out])
    ref, n = ndi.label(fg)
    assert code == 0, err
    assert f"{n} objects, shape 1x24x20" in stdout
    np.testing.assert_array_equal(np.asarray(open_volume(tmp_path / out)[...]).reshape(1, 24, 20), ref[None])
