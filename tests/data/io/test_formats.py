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
import warnings
from dataclasses import asdict, dataclass
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
from slicewise.data.io.stores import create_array_store, open_prediction_writer, partial_path, state_path
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
    #: why slicewise writes no predictions in this format (None: it does, and ``read_prediction`` reads them back)
    no_predictions: str | None = None
    #: whether a file / container of this format selects datasets by key (else a key is refused)
    keyed = False
    #: why slicewise has no writer of this format whose full-disk behavior could be checked (None: it has one)
    read_only: str | None = None

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
        if self.no_predictions:
            pytest.skip(self.no_predictions)
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

    def test_reading_warns_nothing(self, tmp_path: Path) -> None:
        """Opening and reading what was written (slicewise's own outputs carry an ownership marker file, which
        zarr would report as no Zarr node) reaches the user without any warning."""
        path = self.write(tmp_path / self.name, _raw())
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            warnings.simplefilter("ignore", ResourceWarning)  # hidden by default; GC timing makes them flaky here
            with self.open(path) as vol:
                vol[...]
            if not self.no_predictions:
                with read_prediction(self.write_prediction(tmp_path / ("p-" + self.name), _probs())) as pred:
                    pred.probabilities[...]
        assert [str(w.message) for w in seen] == []

    def test_missing_file_is_one_line(self, tmp_path: Path) -> None:
        missing = tmp_path / ("missing-" + self.name)
        with pytest.raises(InputError, match="does not exist") as err:
            open_volume(missing, key=self.key)
        assert "\n" not in str(err.value)
        if not self.no_predictions:
            with pytest.raises(InputError, match="does not exist"):
                read_prediction(missing)

    def test_full_disk_is_one_line_and_leaves_nothing(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        if self.read_only:
            pytest.skip(self.read_only)

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
    no_predictions = "PNG holds uint8/uint16 only: slicewise writes no predictions as a folder of PNG slices"

    def test_key_handling(self, tmp_path: Path) -> None:
        path = self.write(tmp_path / self.name, _raw())
        assert folder_kind(path) == "png"
        np.testing.assert_array_equal(open_volume(f"{path}/*.png")[...], _raw())  # a glob of the slices


class TestTiffFolder(FormatContract):
    """A folder of single-page TIFFs (written by another tool), read one slice per file."""

    name = "tiffs"
    has_voxel_size = False
    no_predictions = "read-only format: slicewise writes no folder of TIFF slices (predictions go to one TIFF)"
    read_only = "read-only format: slicewise writes no folder of TIFF slices (write_volume writes PNG slices)"

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
    read_only = "read-only format: slicewise writes Zarr format 2 (readable by zarr-python 2 and 3), never format 3"

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


@dataclass(frozen=True)
class _Plan:
    """The least a prediction writer needs of a plan (:class:`slicewise.data.io.stores.PredictionPlan`): one
    block covering the output, probabilities only."""

    out_shape: tuple[int, int, int]
    channel_names: tuple[str, ...]
    output_kind: str = "probabilities"
    dtype: str = "float32"
    offset: tuple[int, int, int] = (0, 0, 0)

    @property
    def heads(self) -> tuple[tuple[str, int, int], ...]:
        return (("seg", 0, len(self.channel_names)),)

    @property
    def out_channels(self) -> int:
        return len(self.channel_names)

    @property
    def n_classes(self) -> int:
        return len(self.channel_names)

    @property
    def block(self) -> tuple[int, int, int]:
        return self.out_shape

    def to_json(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> _Plan:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    def fingerprint(self) -> dict[str, Any]:
        return self.to_json()


@dataclass(frozen=True)
class _Whole:
    """The one block of a :class:`_Plan`: the whole output."""

    shape: tuple[int, int, int]

    def local(self, origin: Any) -> tuple[slice, ...]:
        return tuple(slice(0, n) for n in self.shape)


def _predict_unpublished(path: Path, probs: np.ndarray) -> Any:
    """Slicewise's prediction writer (what ``slicewise predict`` uses) with probabilities (C, Z, Y, X) written
    and its one block done: ready to publish (``finalize()``)."""
    plan = _Plan(tuple(probs.shape[1:]), ("background", "membrane"))
    writer = open_prediction_writer(path, plan, voxel_size=VOXEL)
    writer.write_block(_Whole(plan.out_shape), probs)
    writer.mark_done(0)
    return writer


class TestOmeZarrV04(FormatContract):
    """OME-Zarr v0.4: predictions written by slicewise's prediction writer; raw and label images by zarr-python
    with slicewise's pyramid and metadata writers (slicewise writes no other OME-Zarr images)."""

    name = "img.zarr"
    key = None
    keyed = True  # its levels: "img.zarr:0"
    level0 = "0"  # the dataset path of level 0

    def write(self, path: Path, data: np.ndarray, voxel_size: Any = None) -> Path:
        return _ngff_write(path, data, voxel_size)

    def write_prediction(self, path: Path, probs: np.ndarray) -> Path:
        return _predict_unpublished(path, probs).finalize()

    def test_full_disk_is_one_line_and_leaves_nothing(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The prediction writer meets a full disk when it publishes: one line, no output, no lock; only the
        resumable partial output and its state stay (a rerun resumes from them)."""
        if self.read_only:
            pytest.skip(self.read_only)

        def full(*args: Any, **kwargs: Any) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        out = tmp_path / self.name
        writer = _predict_unpublished(out, _probs())
        monkeypatch.setattr(os, "replace", full)  # the publishing rename meets a full disk
        with pytest.raises(WriteError, match="disk is full") as err:
            writer.finalize()
        assert "\n" not in str(err.value)
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
            [partial_path(out).name, state_path(partial_path(out)).name]
        )

    def test_prediction_channels_and_voxel_size(self, tmp_path: Path) -> None:
        with read_prediction(self.write_prediction(tmp_path / self.name, _probs())) as pred:
            assert pred.channels == ["background", "membrane"]
            assert pred.voxel_size == pytest.approx(VOXEL)

    def test_key_handling(self, tmp_path: Path) -> None:
        path = self.write(tmp_path / self.name, _raw())
        np.testing.assert_array_equal(open_volume(f"{path}:{self.level0}")[...], _raw())
        with pytest.raises(InputError):
            open_volume(path, key="nosuchkey")

    def test_ngff_metadata_version(self, tmp_path: Path) -> None:
        path = self.write(tmp_path / self.name, _raw(), voxel_size=VOXEL)
        assert ngff.is_ome_zarr(path)
        assert ngff.open_pyramid(path).multiscale["version"] == "0.4"


def _ngff_v05_write(path: Path, data: np.ndarray, voxel_size: Any, axes: str = "zyx", names: Any = None) -> Path:
    """An OME-Zarr v0.5 image (Zarr format 3, metadata under ``ome``), written by hand as other tools do."""
    root = zarr.open_group(str(path), mode="w", zarr_format=3)
    root.create_array("s0", data=data)
    scale = [1.0] * (len(axes) - 3) + [v / 1000 for v in (voxel_size or (1000.0, 1000.0, 1000.0))]
    multiscale = {
        "axes": [{"name": a, "type": "channel" if a == "c" else "space"} for a in axes[:-3]]
        + [{"name": a, "type": "space", "unit": "micrometer"} for a in axes[-3:]],
        "datasets": [{"path": "s0", "coordinateTransformations": [{"type": "scale", "scale": scale}]}],
    }
    omero = {"omero": {"channels": [{"label": n} for n in names]}} if names else {}
    root.attrs["ome"] = {"version": "0.5", "multiscales": [multiscale], **omero}
    return path


class TestOmeZarrV05Read(TestOmeZarrV04):
    """OME-Zarr v0.5 (Zarr format 3): read only; slicewise writes v0.4."""

    name = "img5.zarr"
    level0 = "s0"
    read_only = "read-only format: slicewise writes OME-Zarr v0.4 (Zarr format 2), never v0.5"

    def write(self, path: Path, data: np.ndarray, voxel_size: Any = None) -> Path:
        return _ngff_v05_write(path, data, voxel_size)

    def write_prediction(self, path: Path, probs: np.ndarray) -> Path:
        return _ngff_v05_write(path, probs, VOXEL, axes="czyx", names=["background", "membrane"])

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
