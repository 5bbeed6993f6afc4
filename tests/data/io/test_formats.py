"""The storage contract, run for every format: one base tester, one subclass per format.

:class:`FormatContract` states what every format must do through the storage layer (:mod:`slicewise.data.io`):
raw volumes and label volumes round-trip exactly (lazy windows included), a prediction written in the format
reads back through ``read_prediction``, the voxel size survives where the format records one, keys select
datasets of containers and are refused by single-array files, a missing file is one line, and a write that
meets a full disk is one line that leaves nothing behind. A subclass supplies the writer (how slicewise, or
another tool, writes the format) and the facts that differ; adding a format is one reader/writer pair in
``slicewise.data.io`` and one subclass here.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from slicewise.data.io import ngff, open_volume, read_prediction, write_volume
from slicewise.data.io.formats import (
    HDF5_SUFFIXES,
    IMAGE_SUFFIXES,
    TIFF_SUFFIXES,
    ZARR_MARKERS,
    ZARR_SUFFIXES,
    channel_name,
    folder_kind,
    output_kind,
)
from slicewise.data.io.stores import create_array_store
from slicewise.errors import InputError, WriteError

VOXEL = (30.0, 4.0, 4.0)  # (z, y, x) nm


def _raw() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (5, 24, 20), dtype=np.uint8)


def _labels() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 7000, (5, 24, 20)).astype(np.uint16)


def _probs() -> np.ndarray:
    p = np.random.default_rng(2).random((2, 5, 24, 20)).astype(np.float32)
    return p / p.sum(0, keepdims=True)


class FormatContract:
    """The contract of one format. Subclasses set the class attributes and may override the writers."""

    #: file or folder name of a volume in this format
    name = ""
    #: key of the dataset written by :meth:`write` (containers), or None
    key: str | None = None
    #: whether the format records the voxel size
    has_voxel_size = True
    #: whether predictions can be written in this format (and read with ``read_prediction``)
    has_predictions = True
    #: whether a file / container of this format selects datasets by key (else a key is refused)
    keyed = False
    #: whether the writer goes through slicewise's atomic writes (then a full disk is checked)
    atomic = True

    def write(self, path: Path, data: np.ndarray, voxel_size: Any = None) -> Path:
        """Write ``data`` (Z, Y, X) at ``path`` as this format; return what to open."""
        return write_volume(path, data, key=self.key, voxel_size=voxel_size)

    def write_prediction(self, path: Path, probs: np.ndarray) -> Path:
        """Write probabilities (C, Z, Y, X) as this format stores a prediction (a container: the dataset
        ``probabilities``); return what to read."""
        store = create_array_store(path, probs.shape, probs.dtype, key="probabilities" if self.keyed else None)
        store[...] = probs
        return store.finalize()

    def open(self, path: Path) -> Any:
        return open_volume(path, key=self.key)

    # -- the contract ------------------------------------------------------------------------------------------------
    def test_raw_round_trip(self, tmp_path: Path) -> None:
        data = _raw()
        vol = self.open(self.write(tmp_path / self.name, data))
        assert vol.shape == data.shape and vol.dtype == data.dtype
        np.testing.assert_array_equal(vol[...], data)
        np.testing.assert_array_equal(vol[1:4, 3:17:2, -5:], data[1:4, 3:17:2, -5:])  # lazy windows, any step
        np.testing.assert_array_equal(vol[2], data[2])

    def test_labels_round_trip(self, tmp_path: Path) -> None:
        data = _labels()
        vol = self.open(self.write(tmp_path / self.name, data))
        assert vol.dtype == data.dtype
        np.testing.assert_array_equal(vol[...], data)

    def test_prediction_round_trip(self, tmp_path: Path) -> None:
        if not self.has_predictions:
            pytest.skip(f"{type(self).__name__}: predictions are not written in this format")
        probs = _probs()
        with read_prediction(self.write_prediction(tmp_path / self.name, probs)) as pred:
            assert pred.probabilities.shape == probs.shape and pred.probabilities.dtype == np.float32
            np.testing.assert_allclose(pred.probabilities[...], probs, atol=1e-6)
            np.testing.assert_allclose(pred.probabilities[1, 2:4], probs[1, 2:4], atol=1e-6)
            assert len(pred.channels) == probs.shape[0]

    def test_voxel_size(self, tmp_path: Path) -> None:
        vol = self.open(self.write(tmp_path / self.name, _raw(), voxel_size=VOXEL))
        if self.has_voxel_size:
            assert vol.voxel_size == pytest.approx(VOXEL)
        else:
            assert vol.voxel_size is None

    def test_key_handling(self, tmp_path: Path) -> None:
        path = self.write(tmp_path / self.name, _raw())
        if self.keyed:
            with pytest.raises(InputError, match="nosuchkey"):
                open_volume(path, key="nosuchkey")
            np.testing.assert_array_equal(open_volume(f"{path}:{self.key}")[...], _raw())
        else:
            with pytest.raises(InputError, match="no dataset keys|key"):
                open_volume(path, key="nosuchkey")

    def test_missing_file_is_one_line(self, tmp_path: Path) -> None:
        missing = tmp_path / ("missing-" + self.name)
        with pytest.raises(InputError, match="does not exist") as err:
            open_volume(missing, key=self.key)
        assert "\n" not in str(err.value)
        if self.has_predictions:
            with pytest.raises(InputError, match="does not exist"):
                read_prediction(missing)

    def test_full_disk_is_one_line_and_leaves_nothing(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        if not self.atomic:
            pytest.skip(f"{type(self).__name__}: written by another tool in this test")

        def full(*args: Any, **kwargs: Any) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(os, "replace", full)  # the final rename meets a full disk
        with pytest.raises(WriteError, match="disk is full") as err:
            self.write(tmp_path / self.name, _raw())
        assert "\n" not in str(err.value)
        assert sorted(p.name for p in tmp_path.iterdir()) == []  # no output, no temporary sibling, no lock


class TestTiff(FormatContract):
    name = "vol.tif"
    has_voxel_size = True

    def write_prediction(self, path: Path, probs: np.ndarray) -> Path:
        """Channel-last Z×Y×X×C, as ``slicewise predict`` writes a TIFF."""
        store = create_array_store(path, (*probs.shape[1:], probs.shape[0]), probs.dtype)
        store[...] = np.moveaxis(probs, 0, -1)
        return store.finalize()


class TestPngFolder(FormatContract):
    name = "slices"  # a path without suffix: a folder of PNG slices
    has_voxel_size = False
    has_predictions = False

    def test_key_handling(self, tmp_path: Path) -> None:
        path = self.write(tmp_path / self.name, _raw())
        assert folder_kind(path) == "png"
        np.testing.assert_array_equal(open_volume(f"{path}/*.png")[...], _raw())  # a glob of the slices


class TestTiffFolder(FormatContract):
    """A folder of single-page TIFFs (written by another tool), read one slice per file."""

    name = "tiffs"
    has_voxel_size = False
    has_predictions = False
    atomic = False

    def write(self, path: Path, data: np.ndarray, voxel_size: Any = None) -> Path:
        import tifffile

        path.mkdir()
        for z, plane in enumerate(data):
            tifffile.imwrite(path / f"s{z}.tif", plane)
        return path

    def test_key_handling(self, tmp_path: Path) -> None:
        path = self.write(tmp_path / self.name, _raw())
        np.testing.assert_array_equal(open_volume(f"{path}/s*.tif")[...], _raw())


class TestHdf5(FormatContract):
    name = "vol.h5"
    key = "raw"
    keyed = True


class TestZarrV2(FormatContract):
    name = "vol.zarr"
    key = "raw"
    keyed = True

    def test_zarr_v2_on_disk(self, tmp_path: Path) -> None:
        path = self.write(tmp_path / self.name, _raw())
        assert (path / ".zgroup").is_file() and folder_kind(path) == "zarr" and output_kind(path) == "zarr"


class TestZarrV3(FormatContract):
    """Zarr format 3 (written by zarr-python itself): read through the same reader."""

    name = "vol3.zarr"
    key = "raw"
    keyed = True
    atomic = False

    def write(self, path: Path, data: np.ndarray, voxel_size: Any = None) -> Path:
        root = zarr.open_group(str(path), mode="w", zarr_format=3)
        arr = root.create_array(self.key, data=data, chunks=(2, 16, 16))
        if voxel_size is not None:
            arr.attrs["voxel_size"] = list(voxel_size)
        return path

    def write_prediction(self, path: Path, probs: np.ndarray) -> Path:
        zarr.create_array(store=str(path), data=probs, zarr_format=3)
        return path

    def test_zarr_v3_on_disk(self, tmp_path: Path) -> None:
        path = self.write(tmp_path / self.name, _raw())
        assert (path / "zarr.json").is_file() and folder_kind(path) == "zarr"


def _ngff_write(path: Path, data: np.ndarray, voxel_size: Any, axes: str = "zyx", names: Any = None) -> Path:
    """An OME-Zarr v0.4 image (Zarr format 2) with its pyramid, through :mod:`slicewise.data.io.ngff`."""
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    root.create_array("0", data=data, chunks=(1,) * (data.ndim - 2) + (16, 16))
    method = "mode" if np.issubdtype(data.dtype, np.integer) else "mean"
    n = ngff.build_pyramid(root, method=method, min_size=8)
    ngff.write_image_metadata(
        root, axes=tuple(axes), voxel_size=voxel_size, n_levels=n, name=path.stem, method=method, channel_names=names
    )
    return path


class TestOmeZarrV04(FormatContract):
    name = "img.zarr"
    key = None
    keyed = True  # its levels: "img.zarr:0"
    atomic = False
    level0 = "0"  # the dataset path of level 0

    def write(self, path: Path, data: np.ndarray, voxel_size: Any = None) -> Path:
        return _ngff_write(path, data, voxel_size)

    def write_prediction(self, path: Path, probs: np.ndarray) -> Path:
        return _ngff_write(path, probs, VOXEL, axes="czyx", names=["background", "membrane"])

    def test_key_handling(self, tmp_path: Path) -> None:
        path = self.write(tmp_path / self.name, _raw())
        np.testing.assert_array_equal(open_volume(f"{path}:{self.level0}")[...], _raw())
        with pytest.raises(InputError):
            open_volume(path, key="nosuchkey")

    def test_ngff_metadata_version(self, tmp_path: Path) -> None:
        path = self.write(tmp_path / self.name, _raw(), voxel_size=VOXEL)
        assert ngff.is_ome_zarr(path)
        assert ngff.ngff_attrs(path)["multiscales"][0]["version"] == "0.4"


def _ngff_v05_write(path: Path, data: np.ndarray, voxel_size: Any, axes: str = "zyx") -> Path:
    """An OME-Zarr v0.5 image (Zarr format 3, metadata under ``ome``), written by hand as other tools do."""
    root = zarr.open_group(str(path), mode="w", zarr_format=3)
    root.create_array("s0", data=data)
    scale = [1.0] * (len(axes) - 3) + [v / 1000 for v in (voxel_size or (1000.0, 1000.0, 1000.0))]
    multiscale = {
        "axes": [{"name": a, "type": "channel" if a == "c" else "space"} for a in axes[:-3]]
        + [{"name": a, "type": "space", "unit": "micrometer"} for a in axes[-3:]],
        "datasets": [{"path": "s0", "coordinateTransformations": [{"type": "scale", "scale": scale}]}],
    }
    root.attrs["ome"] = {"version": "0.5", "multiscales": [multiscale]}
    return path


class TestOmeZarrV05Read(TestOmeZarrV04):
    """OME-Zarr v0.5 (Zarr format 3): read only; slicewise writes v0.4."""

    name = "img5.zarr"
    level0 = "s0"

    def write(self, path: Path, data: np.ndarray, voxel_size: Any = None) -> Path:
        return _ngff_v05_write(path, data, voxel_size)

    def write_prediction(self, path: Path, probs: np.ndarray) -> Path:
        return _ngff_v05_write(path, probs, VOXEL, axes="czyx")

    def test_ngff_metadata_version(self, tmp_path: Path) -> None:
        path = self.write(tmp_path / self.name, _raw(), voxel_size=VOXEL)
        assert ngff.is_ome_zarr(path) and (path / "zarr.json").is_file()
        assert zarr.open_group(str(path), mode="r").attrs["ome"]["version"] == "0.5"


def test_the_format_table_names_every_suffix_once() -> None:
    suffixes = [*TIFF_SUFFIXES, *IMAGE_SUFFIXES, *HDF5_SUFFIXES, *ZARR_SUFFIXES]
    assert len(suffixes) == len(set(suffixes))
    assert ".zarray" in ZARR_MARKERS and "zarr.json" in ZARR_MARKERS


def test_unnamed_channels_have_one_fallback_name(tmp_path: Path) -> None:
    assert [channel_name(i) for i in range(3)] == ["class0", "class1", "class2"]
    probs = _probs()
    out = create_array_store(tmp_path / "p.zarr", probs.shape, probs.dtype)  # a plain array: no names recorded
    out[...] = probs
    with read_prediction(out.finalize()) as pred:
        assert pred.channels == [channel_name(0), channel_name(1)]
