"""Label files read back with the offset they record: Zarr / HDF5 attributes, TIFF metadata, predict stores."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile
import zarr

from slicewise.data.io.labels import open_label_map
from slicewise.errors import InputError


def _labels() -> np.ndarray:
    return np.arange(2 * 6 * 5, dtype=np.uint16).reshape(2, 6, 5)


def test_a_zarr_array_gives_its_offset_attribute(tmp_path: Path) -> None:
    arr = zarr.create_array(store=str(tmp_path / "l.zarr"), data=_labels(), zarr_format=2)
    arr.attrs["offset"] = [1, 2, 3]
    labels, offset = open_label_map(tmp_path / "l.zarr")
    assert offset == (1, 2, 3)
    np.testing.assert_array_equal(labels[...], _labels())


def test_a_tiff_gives_the_offset_of_its_description(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "l.tif", _labels(), metadata={"slicewise": {"offset": [0, 4, 1]}})
    labels, offset = open_label_map(tmp_path / "l.tif")
    assert offset == (0, 4, 1) and labels.shape == (2, 6, 5)


def test_an_hdf5_dataset_gives_its_offset_attribute_stored_as_an_array(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "l.h5", "w") as f:
        f.create_dataset("data", data=_labels()).attrs["offset"] = np.array([2, 1, 0])
    assert open_label_map(tmp_path / "l.h5")[1] == (2, 1, 0)


def test_a_file_without_offset_is_at_the_origin(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "l.h5", "w") as f:
        f.create_dataset("seg", data=_labels())
    labels, offset = open_label_map(tmp_path / "l.h5", key="seg")
    assert offset == (0, 0, 0)
    np.testing.assert_array_equal(labels[...], _labels())


def test_a_predict_store_gives_its_labels_and_recorded_offset(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "p.h5", "w") as f:
        f.create_dataset("labels", data=_labels())
        f.attrs["slicewise"] = json.dumps({"offset": [3, 0, 2]})
    labels, offset = open_label_map(tmp_path / "p.h5")
    assert offset == (3, 0, 2)
    np.testing.assert_array_equal(labels[...], _labels())


def test_a_store_of_probabilities_is_refused_naming_segment(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "p.h5", "w") as f:
        f.create_dataset("probabilities", data=np.full((2, 2, 6, 5), 0.5, np.float32))
    with pytest.raises(InputError, match="slicewise segment"):
        open_label_map(tmp_path / "p.h5")


@pytest.mark.parametrize(("value", "match"), [("abc", "not three voxel counts"), ([1, -2, 0], "expected three")])
def test_a_bad_offset_attribute_is_one_line(tmp_path: Path, value: object, match: str) -> None:
    with h5py.File(tmp_path / "l.h5", "w") as f:
        f.create_dataset("data", data=_labels()).attrs["offset"] = value
    with pytest.raises(InputError, match=match) as err:
        open_label_map(tmp_path / "l.h5")
    assert "\n" not in str(err.value)
