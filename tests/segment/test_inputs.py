"""Probability maps as segment reads them: a 2-D map is one slice, complex data and negative channel
indices are refused in one line, the distance seed threshold is checked, messages name the real dtype."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import tifffile
import zarr
from scipy import ndimage as ndi

from slicewise.data.io import open_volume
from slicewise.data.io.predictions import read_prediction
from slicewise.errors import InputError
from slicewise.segment import as_probability_source, segment, segment_to


def _fg2d() -> np.ndarray:
    rng = np.random.default_rng(3)
    return np.where(ndi.binary_opening(rng.random((20, 24)) < 0.5), 0.9, 0.1).astype(np.float32)


def _write(path, arr: np.ndarray) -> str:
    """``arr`` as a plain array file: TIFF, Zarr array or HDF5 dataset ``probabilities``."""
    if path.suffix == ".tif":
        tifffile.imwrite(path, arr)
    elif path.suffix == ".zarr":
        zarr.save(str(path), arr)
    else:
        with h5py.File(path, "w") as f:
            f["probabilities"] = arr
    return str(path)


def test_a_2d_map_in_memory_is_one_slice():
    fg = _fg2d()
    lab = segment(fg)
    assert lab.shape == (1, *fg.shape) and lab.dtype == np.int32
    np.testing.assert_array_equal(lab[0], ndi.label(fg > 0.5)[0])
    assert as_probability_source(fg).volume_shape == (1, *fg.shape)


@pytest.mark.parametrize("name", ["fg.tif", "fg.zarr", "fg.h5"])
@pytest.mark.parametrize("out", ["lab.tif", "lab.zarr", "lab.h5"])
def test_a_2d_map_file_segments_to_one_slice_of_labels(tmp_path, name, out):
    fg = _fg2d()
    src = _write(tmp_path / name, fg)
    assert read_prediction(src).probabilities.shape == (1, 1, *fg.shape)
    res = segment_to(src, tmp_path / out, block=(1, 7, 9))
    assert res.shape == (1, *fg.shape)
    np.testing.assert_array_equal(
        np.asarray(open_volume(tmp_path / out)[...]).reshape(res.shape), ndi.label(fg > 0.5)[0][None]
    )


@pytest.mark.parametrize("name", ["c.tif", "c.zarr", "c.h5"])
def test_complex_files_are_refused_naming_their_dtype_and_leave_nothing(tmp_path, name):
    src = _write(tmp_path / name, (_fg2d()[None] + 0.0j).astype(np.complex64))
    with pytest.raises(InputError, match="dtype complex64") as err:
        segment_to(src, tmp_path / "out.zarr")
    assert "\n" not in str(err.value) and "float32" not in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


@pytest.mark.parametrize(
    "bad, match",
    [
        ((_fg2d() + 0.5j).astype(np.complex128), "dtype complex128"),
        (np.zeros((2, 2, 2, 2, 2), np.float32), "shape (2, 2, 2, 2, 2)"),
        (np.zeros(5, np.float32), "shape (5,)"),
    ],
)
def test_bad_arrays_are_refused_in_one_line(bad, match):
    with pytest.raises(InputError) as err:
        segment(bad)
    assert match in str(err.value) and "\n" not in str(err.value)


def test_out_of_range_values_name_the_stored_dtype(tmp_path):
    src = _write(tmp_path / "raw.tif", np.full((2, 6, 6), 200.0, np.float64))
    with pytest.raises(InputError, match=r"\(float64\)") as err:
        segment(src)
    assert "segment takes" not in str(err.value) and "slicewise predict" in str(err.value)
    with pytest.raises(InputError, match=r"\(float64\)"):
        segment(np.full((2, 6, 6), 200.0))


def _three_channels() -> np.ndarray:
    fg = np.zeros((2, 12, 12), np.float32)
    fg[:, 2:6, 2:6] = 0.9
    return np.stack([1 - fg, fg, np.full(fg.shape, 0.1, np.float32)])


@pytest.mark.parametrize("option", ["foreground_channel", "boundary_channel", "distance_channel"])
@pytest.mark.parametrize("sel", [-1, "-1", -3])
def test_negative_channel_indices_are_refused(option, sel):
    use = "distance" if option == "distance_channel" else "boundary"
    with pytest.raises(InputError, match="negative") as err:
        segment(_three_channels(), mode="watershed", use=use, **{option: sel})
    assert "\n" not in str(err.value) and "0..2" in str(err.value)


def test_non_negative_indices_and_names_still_choose_channels():
    prob = _three_channels()
    by_index = segment(prob, foreground_channel="1")
    assert by_index.max() == 1 and (by_index > 0).sum() == 2 * 16
    np.testing.assert_array_equal(
        segment(prob, channel_names=["bg", "fg", "boundary"], foreground_channel="fg"), by_index
    )
    with pytest.raises(InputError, match="out of range"):
        segment(prob, foreground_channel=3)


@pytest.mark.parametrize("t", [-5.0, -0.1, float("nan"), float("inf")])
def test_the_distance_seed_threshold_is_checked(t):
    with pytest.raises(InputError, match="--seed-threshold") as err:
        segment(_three_channels(), mode="watershed", use="distance", foreground_channel=1, seed_threshold=t)
    assert "\n" not in str(err.value)


def test_a_valid_distance_seed_threshold_above_one_is_accepted():
    lab = segment(_three_channels(), mode="watershed", use="distance", foreground_channel=1, seed_threshold=1.5)
    assert lab.max() == 1  # a distance, not a probability: values > 1 are fine
