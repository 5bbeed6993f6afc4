"""Volume I/O: formats agree, reads are lazy, writes are atomic, bad input gives one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import tifffile
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from slicewise.data import (
    Volume,
    as_volume,
    check_labels,
    check_raw,
    create_zarr,
    open_volume,
    stack_slices,
    write_volume,
)
from slicewise.data.io import summarize_volume
from slicewise.data.io.checks import SAMPLE_BLOCK, SAMPLE_BLOCKS
from slicewise.data.io.outputs import atomic_path
from slicewise.errors import InputError

RNG = np.random.default_rng(0)


def _one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert "\n" not in msg and msg
    return msg


def _png_folder(folder: Path, vol: np.ndarray, names: list[str] | None = None) -> Path:
    folder.mkdir()
    for z, sl in enumerate(vol):
        Image.fromarray(sl).save(folder / (names[z] if names else f"s{z}.png"))
    return folder


@pytest.fixture()
def vol() -> np.ndarray:
    return RNG.integers(0, 256, (7, 24, 20), dtype=np.uint8)


@pytest.fixture()
def copies(tmp_path: Path, vol: np.ndarray) -> dict[str, Path]:
    """The same volume as TIFF, HDF5, Zarr and a PNG folder (written with other tools than ours)."""
    tifffile.imwrite(tmp_path / "v.tif", vol)
    with h5py.File(tmp_path / "v.h5", "w") as f:
        f.create_dataset("raw", data=vol, chunks=(1, 24, 20))
    z = zarr.create_array(store=str(tmp_path / "v.zarr"), shape=vol.shape, chunks=(1, 12, 10), dtype=vol.dtype)
    z[:] = vol
    _png_folder(tmp_path / "pngs", vol, [f"img{i}.png" for i in range(len(vol))])
    return {"tif": tmp_path / "v.tif", "h5": tmp_path / "v.h5", "zarr": tmp_path / "v.zarr", "png": tmp_path / "pngs"}


def test_stacks_identical_across_formats(copies: dict[str, Path], vol: np.ndarray) -> None:
    centres = [0, 3, 6]
    expected = stack_slices(vol, centres, k=5, dz=1, yx=(slice(2, 20), slice(1, 17)))
    for name, path in copies.items():
        v = open_volume(path)
        assert v.shape == vol.shape and v.dtype == vol.dtype, name
        got = stack_slices(v, centres, k=5, dz=1, yx=(slice(2, 20), slice(1, 17)))
        np.testing.assert_array_equal(got, expected, err_msg=name)


def test_file_volumes_pickle_by_path(copies: dict[str, Path], vol: np.ndarray) -> None:
    import pickle

    for name, path in copies.items():
        opened = open_volume(path)
        data = pickle.dumps(opened)
        v = pickle.loads(data)
        np.testing.assert_array_equal(v[2:4, 5], vol[2:4, 5], err_msg=name)
        assert v.source == opened.source and v.voxel_size == opened.voxel_size, name
        assert len(data) < vol.nbytes // 2, name  # the recipe to open it again, not the voxels


@pytest.mark.parametrize("suffix", [".tif", ".h5", ".zarr", ""])
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32", "int64", "rgb"])
def test_write_roundtrip(tmp_path: Path, suffix: str, dtype: str) -> None:
    if dtype == "rgb":
        a = RNG.integers(0, 256, (2, 9, 11, 3), dtype=np.uint8)
    else:
        a = (RNG.random((4, 9, 11)) * 1000).astype(dtype)
    out = tmp_path / f"out{suffix}"
    if suffix == "" and dtype in ("float32", "int64"):
        with pytest.raises(InputError) as err:
            write_volume(out, a)
        assert "PNG" in _one_line(err)
        assert not out.exists()
        return
    write_volume(out, a, chunks=(2, 5, 5) if suffix in (".h5", ".zarr") else None)
    back = open_volume(out)
    assert back.shape == a.shape and back.dtype == a.dtype
    assert back.channels == (3 if dtype == "rgb" else None)
    np.testing.assert_array_equal(back.numpy(), a)


@pytest.mark.parametrize("suffix", [".tif", ".h5", ".zarr"])
def test_voxel_size_roundtrip(tmp_path: Path, suffix: str) -> None:
    write_volume(tmp_path / f"v{suffix}", np.zeros((2, 4, 4), np.uint8), voxel_size=(50, 4, 4))
    assert open_volume(tmp_path / f"v{suffix}").voxel_size == (50.0, 4.0, 4.0)


def test_voxel_size_from_imagej_tiff(tmp_path: Path) -> None:
    tifffile.imwrite(
        tmp_path / "ij.tif",
        np.zeros((3, 8, 8), np.uint8),
        imagej=True,
        resolution=(1 / 0.004, 1 / 0.005),
        metadata={"spacing": 0.05, "unit": "micron", "axes": "ZYX"},
    )
    vs = open_volume(tmp_path / "ij.tif").voxel_size
    assert vs is not None
    np.testing.assert_allclose(vs, (50.0, 5.0, 4.0), rtol=1e-4)


def test_existing_output_needs_overwrite(tmp_path: Path) -> None:
    a, b = np.zeros((2, 4, 4), np.uint8), np.ones((2, 4, 4), np.uint8)
    for name in ("o.tif", "o.zarr", "o.h5", "pngs"):
        write_volume(tmp_path / name, a)
        with pytest.raises(InputError) as err:
            write_volume(tmp_path / name, b)
        assert "overwrite" in _one_line(err)
        np.testing.assert_array_equal(open_volume(tmp_path / name).numpy(), a)
        write_volume(tmp_path / name, b, overwrite=True)
        np.testing.assert_array_equal(open_volume(tmp_path / name).numpy(), b)


def test_hdf5_adds_key_to_existing_file(tmp_path: Path) -> None:
    p = tmp_path / "f.h5"
    write_volume(p, np.zeros((2, 4, 4), np.uint8), key="raw")
    write_volume(f"{p}:labels/ids", np.arange(32, dtype=np.uint32).reshape(2, 4, 4))
    assert open_volume(p, key="raw").numpy().sum() == 0
    assert open_volume(f"{p}/labels/ids")[1, 0, 0] == 16
    with pytest.raises(InputError) as err:
        write_volume(p, np.ones((2, 4, 4), np.uint8), key="raw")
    assert "raw" in _one_line(err)
    with h5py.File(p) as f:
        names: list[str] = []
        f.visit(names.append)
    assert sorted(names) == ["labels", "labels/ids", "raw"]


class _Failing:
    """Array-like whose slice ``bad`` cannot be read (a disk error mid-write)."""

    def __init__(self, shape: tuple[int, ...], bad: int) -> None:
        self.shape, self.dtype, self.bad = shape, np.dtype(np.uint8), bad

    def __getitem__(self, key: tuple) -> np.ndarray:
        z = key[0]
        zs = range(*z.indices(self.shape[0])) if isinstance(z, slice) else [z]
        if self.bad in zs:
            raise OSError("simulated read error")
        return np.zeros(self.shape, np.uint8)[key]


@pytest.mark.parametrize("name", ["o.tif", "o.zarr", "o.h5", "pngs"])
def test_failed_write_leaves_nothing(tmp_path: Path, name: str) -> None:
    src = Volume(_Failing((40, 8, 8), bad=35))
    with pytest.raises(InputError, match="damaged or incomplete"):  # a read error of the source, in one line
        write_volume(tmp_path / name, src, chunks=(1, 8, 8))
    assert list(tmp_path.iterdir()) == []


def test_failed_hdf5_add_leaves_file_as_it_was(tmp_path: Path) -> None:
    p = tmp_path / "f.h5"
    write_volume(p, np.zeros((2, 4, 4), np.uint8), key="raw")
    with pytest.raises(InputError, match="damaged or incomplete"):
        write_volume(p, Volume(_Failing((40, 8, 8), bad=35)), key="pred", chunks=(1, 8, 8))
    with h5py.File(p) as f:
        assert list(f.keys()) == ["raw"]


def test_zarr_reads_only_the_chunks_it_needs(tmp_path: Path) -> None:
    a = RNG.integers(0, 256, (6, 16, 16), dtype=np.uint8)
    write_volume(tmp_path / "v.zarr", a, chunks=(1, 16, 16))
    chunk_files = [p for p in (tmp_path / "v.zarr").iterdir() if not p.name.startswith(".")]
    assert len(chunk_files) == 6
    for p in chunk_files:  # corrupt every chunk except z = 2, 3, 4
        if not p.name.startswith(("2.", "3.", "4.")):
            p.write_bytes(b"not a chunk")
    v = open_volume(tmp_path / "v.zarr")
    np.testing.assert_array_equal(stack_slices(v, 3, k=3), a[2:5])
    with pytest.raises(InputError):  # a damaged chunk is a one-line input error
        v[0]


def test_hdf5_reads_only_requested_slices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = RNG.integers(0, 256, (20, 16, 16), dtype=np.uint8)
    write_volume(tmp_path / "v.h5", a)
    v = open_volume(tmp_path / "v.h5")
    reads: list[tuple] = []
    original = h5py.Dataset.__getitem__

    def spy(self, key, *args, **kwargs):
        reads.append(key)
        return original(self, key, *args, **kwargs)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    out = stack_slices(v, 10, k=3, yx=(slice(0, 8), slice(4, 12)))
    np.testing.assert_array_equal(out, a[9:12, 0:8, 4:12])
    assert sorted(k[0] for k in reads) == [9, 10, 11]
    assert all(k[1:] == (slice(0, 8, 1), slice(4, 12, 1)) for k in reads)


def test_tiff_reads_only_requested_pages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tifffile.zarr as tz

    a = RNG.integers(0, 256, (10, 32, 32), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "v.tif", a, compression="zlib")
    v = open_volume(tmp_path / "v.tif")
    keys: list[str] = []
    original = tz.ZarrTiffStore.get

    async def spy(self, key, *args, **kwargs):
        keys.append(key)
        return await original(self, key, *args, **kwargs)

    monkeypatch.setattr(tz.ZarrTiffStore, "get", spy)
    np.testing.assert_array_equal(stack_slices(v, 5, k=3), a[4:7])
    assert sorted(k.split(".")[0] for k in keys) == ["4", "5", "6"]


def test_image_folder_is_read_per_slice_in_natural_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    names = ["img10.png", "img2.png", "img1.png"]
    _png_folder(tmp_path / "f", np.stack([np.full((4, 4), v, np.uint8) for v in (10, 2, 1)]), names)
    import slicewise.data.io.readers.images as images

    opened: list[str] = []
    real = images._read_image
    monkeypatch.setattr(images, "_read_image", lambda p: opened.append(p.name) or real(p))
    v = open_volume(tmp_path / "f")
    assert v.shape == (3, 4, 4)
    opened.clear()
    assert v[1, 0, 0] == 2
    assert opened == ["img2.png"]
    assert [int(v[z, 0, 0]) for z in range(3)] == [1, 2, 10]
    assert [int(x) for x in open_volume(str(tmp_path / "f" / "img*.png"))[:, 0, 0]] == [1, 2, 10]


def test_open_volume_dispatches_through_the_reader_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import slicewise.data.io.readers as readers

    suffixes = [s for r in readers.READERS for s in r.suffixes]
    assert len(suffixes) == len(set(suffixes))  # one reader per suffix
    calls: list[tuple[str, str | None]] = []

    def fake(p: Path, key: str | None) -> Volume:
        calls.append((p.name, key))
        return as_volume(np.zeros((1, 2, 2), np.uint8))

    table = (
        *readers.READERS,
        readers.Reader("fake", (".fake",), fake),
        readers.Reader("marked", (), fake, keyed=True, markers=("fake.json",)),
    )
    monkeypatch.setattr(readers, "READERS", table)
    (tmp_path / "a.fake").write_bytes(b"")
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "fake.json").write_text("{}")
    assert open_volume(tmp_path / "a.fake").shape == (1, 2, 2)
    open_volume(tmp_path / "store", key="k")
    assert calls == [("a.fake", None), ("store", "k")]
    with pytest.raises(InputError, match="no dataset keys"):
        open_volume(tmp_path / "a.fake", key="k")


def test_2d_images_are_depth_one(tmp_path: Path) -> None:
    rgb = RNG.integers(0, 256, (10, 12, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(rgb[..., 0]).save(tmp_path / "gray.png")
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    v = open_volume(tmp_path / "rgb.png")
    assert v.shape == (1, 10, 12, 3) and v.channels == 3
    np.testing.assert_array_equal(v[0], rgb)
    assert open_volume(tmp_path / "gray.png").shape == (1, 10, 12)
    assert open_volume(tmp_path / "rgb.tif").shape == (1, 10, 12, 3)
    assert as_volume(rgb[..., 0]).shape == (1, 10, 12)


def test_hdf5_keys(tmp_path: Path) -> None:
    p = tmp_path / "c.h5"
    with h5py.File(p, "w") as f:
        f["volumes/raw"] = np.zeros((2, 3, 3), np.uint8)
        f["volumes/labels/neuron_ids"] = np.ones((2, 3, 3), np.uint64)
        f["volumes/raw"].attrs["resolution"] = (40.0, 4.0, 4.0)
    assert open_volume(f"{p}:volumes/labels/neuron_ids").dtype == np.uint64
    assert open_volume(p, key="volumes/raw").voxel_size == (40.0, 4.0, 4.0)
    with pytest.raises(InputError) as err:
        open_volume(p, key="volumes/nope")
    assert "volumes/raw" in _one_line(err) and "volumes/labels/neuron_ids" in str(err.value)
    with pytest.raises(InputError) as err:
        open_volume(p)
    assert "key" in _one_line(err)


def test_zarr_group_keys(tmp_path: Path) -> None:
    g = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    g.create_array("raw", shape=(2, 3, 3), dtype="u1")
    g.create_array("labels", shape=(2, 3, 3), dtype="u4")
    assert open_volume(tmp_path / "g.zarr", key="labels").dtype == np.uint32
    assert open_volume(tmp_path / "g.zarr/raw").dtype == np.uint8
    with pytest.raises(InputError) as err:
        open_volume(tmp_path / "g.zarr", key="x")
    assert "labels" in _one_line(err) and "raw" in str(err.value)


def test_bad_paths_give_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        open_volume(tmp_path / "missing.tif")
    assert "does not exist" in _one_line(err)
    (tmp_path / "x.nii").write_bytes(b"0")
    with pytest.raises(InputError) as err:
        open_volume(tmp_path / "x.nii")
    assert ".tif" in _one_line(err) and ".zarr" in str(err.value) and ".h5" in str(err.value)
    (tmp_path / "broken.h5").write_bytes(b"no hdf5")
    with pytest.raises(InputError) as err:
        open_volume(tmp_path / "broken.h5")
    _one_line(err)
    (tmp_path / "v.n5").mkdir()
    if not hasattr(zarr, "N5Store"):
        with pytest.raises(InputError) as err:
            open_volume(tmp_path / "v.n5")
        assert "N5" in _one_line(err) and "convert" in str(err.value)
    with pytest.raises(InputError) as err:
        write_volume(tmp_path / "o.nii", np.zeros((1, 2, 2), np.uint8))
    assert ".zarr" in _one_line(err)
    assert not (tmp_path / "o.nii").exists()


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_indexing_matches_numpy(data: st.DataObject) -> None:
    shape = (5, 6, 4)
    a = np.arange(np.prod(shape)).reshape(shape)
    v = as_volume(a)

    def axis_index(n: int):
        return st.one_of(
            st.integers(-n, n - 1),
            st.builds(
                slice,
                st.none() | st.integers(-n - 2, n + 2),
                st.none() | st.integers(-n - 2, n + 2),
                st.none() | st.sampled_from([1, 2, 3, -1, -2]),
            ),
        )

    n_axes = data.draw(st.integers(1, 3))
    key = tuple(data.draw(axis_index(n)) for n in shape[:n_axes])
    np.testing.assert_array_equal(v[key], a[key])
    np.testing.assert_array_equal(v[..., 1], a[..., 1])


def test_iter_chunks_tiles_the_volume(vol: np.ndarray) -> None:
    v = as_volume(vol)
    out = np.zeros_like(vol)
    blocks = list(v.iter_chunks((3, 10, 7)))
    for sl, block in blocks:
        assert block.shape[0] <= 3 and block.shape[1] <= 10 and block.shape[2] <= 7
        out[sl] += block
    np.testing.assert_array_equal(out, vol)
    assert len(blocks) == 3 * 3 * 3


class _Lazy:
    """A 40 GB 'volume' (float32 zeros by default) generated on access: NaN in every slice from ``nan_z`` on.
    Counts the voxels read."""

    def __init__(self, nan_z: int | None = None, dtype: Any = np.float32, value: float = 0) -> None:
        self.shape, self.dtype, self.nan_z, self.value, self.voxels_read = (
            (10000, 1024, 1024),
            np.dtype(dtype),
            nan_z,
            value,
            0,
        )

    def __getitem__(self, key: tuple) -> np.ndarray:
        zs, ys, xs = (range(*k.indices(n)) for k, n in zip(key, self.shape))
        self.voxels_read += len(zs) * len(ys) * len(xs)
        out = np.full((len(zs), len(ys), len(xs)), self.value, self.dtype)
        if self.nan_z is not None:
            out[np.asarray(zs) >= self.nan_z] = np.nan
        return out


def test_check_raw_reads_a_bounded_sample_of_lazy_volumes_and_finds_nan() -> None:
    budget = SAMPLE_BLOCKS * int(np.prod(SAMPLE_BLOCK))
    clean = _Lazy()
    assert check_raw(Volume(clean)).shape == clean.shape
    assert 0 < clean.voxels_read <= budget  # 1.6e7 of 1e10 voxels
    backend = _Lazy(nan_z=40)
    with pytest.raises(InputError) as err:
        check_raw(Volume(backend))
    msg = _one_line(err)
    assert "NaN or Inf" in msg and int(msg.split("z=")[1].split(")")[0]) >= 40
    assert backend.voxels_read <= budget
    wide = _Lazy(dtype=np.int64, value=200)  # 0..255 in int64: ÷ 9.2e18 would be black
    with pytest.raises(InputError, match="int64 with values 200..200, under 1/256") as err:
        check_raw(Volume(wide))
    assert "save it as uint8" in _one_line(err) and wide.voxels_read <= budget
    with pytest.raises(InputError) as err:
        check_raw(np.zeros((0, 4, 4), np.uint8))
    assert "empty" in _one_line(err)
    assert check_raw(np.ones((2, 4, 4), np.float32)).shape == (2, 4, 4)


def test_check_labels() -> None:
    ok = np.zeros((2, 4, 4), np.uint8)
    ok[0, 0, 0] = 255
    assert check_labels(ok, raw_shape=(2, 4, 4, 3), n_classes=2).shape == (2, 4, 4)
    with pytest.raises(InputError) as err:
        check_labels(ok, raw_shape=(3, 4, 4))
    assert "(2, 4, 4)" in _one_line(err) and "(3, 4, 4)" in str(err.value)
    with pytest.raises(InputError) as err:
        check_labels(np.arange(32).reshape(2, 4, 4) % 5, n_classes=3)
    assert "n_classes=3" in _one_line(err)
    frac = np.zeros((2, 4, 4), np.float32)
    frac[1, 2, 2] = 0.5
    with pytest.raises(InputError) as err:
        check_labels(frac, kind="instance")
    assert "z=1" in _one_line(err) and "non-integer" in str(err.value)
    assert check_labels(frac.round() + 3, kind="instance").dtype == np.float32
    with pytest.raises(InputError) as err:
        check_labels(-ok.astype(np.int16), kind="instance")
    _one_line(err)
    with pytest.raises(InputError) as err:
        check_labels(ok, kind="panoptic")
    assert "semantic" in _one_line(err)


def test_create_zarr_is_filled_then_published(tmp_path: Path) -> None:
    final = tmp_path / "pred.zarr"
    with atomic_path(final) as tmp:
        arr = create_zarr(tmp, (4, 8, 8), np.float32, chunks=(1, 8, 8), voxel_size=(30, 8, 8))
        for z in range(4):
            arr[z] = z
        assert not final.exists()
    v = open_volume(final)
    assert v.voxel_size == (30.0, 8.0, 8.0)
    np.testing.assert_array_equal(v[:, 0, 0], [0, 1, 2, 3])
    with pytest.raises(InputError):
        create_zarr(final, (1, 2, 2), np.uint8)


def test_summary_distinguishes_labels_from_images(tmp_path: Path) -> None:
    img = RNG.integers(0, 65535, (2, 32, 32), dtype=np.uint16)
    inst = np.repeat(np.repeat(np.arange(20, 45, dtype=np.uint16).reshape(1, 5, 5), 8, 1), 8, 2).repeat(2, 0)
    sem = (inst % 3).astype(np.uint8)  # 3 classes
    assert summarize_volume(img)["looks_like"] == "image"
    assert summarize_volume(inst)["looks_like"] == "instance labels"
    s = summarize_volume(sem)
    assert s["looks_like"] == "semantic labels" and s["values"] == [0, 1, 2] and (s["min"], s["max"]) == (0, 2)


def test_shared_isbi_volume(shared_data: Path) -> None:
    v = open_volume(shared_data / "isbi2012" / "train-volume.tif")
    assert v.shape == (30, 512, 512) and v.dtype == np.uint8
    np.testing.assert_array_equal(v[7], tifffile.imread(shared_data / "isbi2012" / "train-volume.tif", key=7))
