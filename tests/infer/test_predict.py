import json
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st

from slicewise.errors import InputError
from slicewise.data.stacking import context_range
from slicewise.infer.predict import partial_path, predict, predict_dask, predict_slices
from slicewise.infer.tiling import tile_starts

TOL = dict(rtol=0, atol=1e-6)
KW = dict(tile=16, batch_size=5, progress=False, device="cpu")


@settings(max_examples=25, deadline=None)
@given(
    z=st.integers(1, 5), y=st.integers(3, 45), x=st.integers(3, 45),
    tile=st.sampled_from([8, 16, 24]), overlap=st.sampled_from([0.0, 0.25, 0.5, 0.75]),
    batch=st.integers(1, 7), k=st.sampled_from([1, 3]),
)
def test_plus_one_model_gives_input_plus_one_everywhere(stub, z, y, x, tile, overlap, batch, k):
    if k > z:
        k = 1
    vol = np.random.default_rng(z * y + x).integers(0, 256, (z, y, x), dtype=np.uint8)
    model = stub(in_slices=k, kind="plus_one")
    probs = predict(model, vol, tile=tile, overlap=overlap, batch_size=batch, progress=False, device="cpu")
    assert probs.shape == (3, z, y, x) and probs.dtype == np.float32
    np.testing.assert_allclose(probs[2], vol.astype(np.float32) / 255 + 1, rtol=0, atol=2e-6)
    p0 = float(torch.softmax(torch.tensor([1.0, 0.0]), 0)[0])
    np.testing.assert_allclose(probs[0], p0, rtol=0, atol=1e-6)
    np.testing.assert_allclose(probs[0] + probs[1], 1.0, rtol=0, atol=1e-6)


def test_labels_and_both(stub, small_volume):
    model = stub()
    probs = predict(model, small_volume, **KW)
    labels = predict(model, small_volume, output_kind="labels", **KW)
    both = predict(model, small_volume, output_kind="both", **KW)
    assert labels.dtype == np.uint8 and labels.shape == small_volume.shape
    np.testing.assert_array_equal(labels, np.argmax(probs[:2], 0))
    np.testing.assert_allclose(both[0], probs, **TOL)
    np.testing.assert_array_equal(both[1], labels)
    assert 0 < labels.mean() < 1  # the seeded conv gives both classes somewhere


@pytest.mark.parametrize("chunk_z,overlap", [(1, 0.25), (3, 0.0), (3, 0.5), (7, 0.25), (10, 0.25)])
def test_chunked_prediction_equals_in_memory(stub, small_volume, tmp_path, chunk_z, overlap):
    model = stub()
    ref = predict(model, small_volume, overlap=overlap, **KW)
    out = predict(model, small_volume, overlap=overlap, output=tmp_path / "p.zarr", output_kind="both", chunk_z=chunk_z, **KW)
    assert out == tmp_path / "p.zarr"
    g = zarr.open_group(str(out), mode="r")
    np.testing.assert_allclose(g["probabilities"][...], ref, **TOL)
    np.testing.assert_array_equal(g["labels"][...], np.argmax(ref[:2], 0))
    assert "done" not in g and g.attrs["channels"] == ["class0", "class1", "distance"]
    assert not partial_path(out).exists()


@pytest.mark.parametrize("scheduler", ["sync", "threads"])
def test_dask_path_equals_in_memory(stub, small_volume, tmp_path, scheduler):
    model = stub(kind="conv")
    ref = predict(model, small_volume, **KW)
    out = predict_dask(model, small_volume, tmp_path / "d.zarr", chunk_z=2, scheduler=scheduler, **KW)
    np.testing.assert_allclose(zarr.open_group(str(out), mode="r")["probabilities"][...], ref, **TOL)


def test_dask_reads_a_path_input_per_task(stub, small_volume, tmp_path):
    from slicewise.data.io import write_volume

    src = write_volume(tmp_path / "in.h5", small_volume, key="raw")
    model = stub()
    ref = predict(model, small_volume, **KW)
    out = predict(model, src, key="raw", output=tmp_path / "d.zarr", chunk_z=3, scheduler="sync", **KW)
    np.testing.assert_allclose(zarr.open_group(str(out), mode="r")["probabilities"][...], ref, **TOL)


def test_resume_skips_finished_chunks(stub, small_volume, tmp_path):
    model = stub()
    ref = predict(model, small_volume, **KW)
    out = tmp_path / "r.zarr"
    seen: list[int] = []

    def crash_after_two(i: int) -> None:
        seen.append(i)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        predict(model, small_volume, output=out, chunk_z=2, on_chunk=crash_after_two, **KW)
    assert not out.exists() and partial_path(out).exists()
    done = zarr.open_group(str(partial_path(out)), mode="r")["done"][...]
    assert done.tolist() == [1, 1, 0, 0]
    tiles_per_plane = 3 * 4  # 40x52 at tile 16, overlap 0.25
    model.calls = 0
    ran: list[int] = []
    predict(model, small_volume, output=out, chunk_z=2, on_chunk=ran.append, **KW)
    assert ran == [2, 3]
    assert model.calls == 3 * tiles_per_plane  # only slices 4, 5, 6
    np.testing.assert_allclose(zarr.open_group(str(out), mode="r")["probabilities"][...], ref, **TOL)
    assert not partial_path(out).exists()


def test_crash_inside_the_model_keeps_partial_and_other_settings_start_afresh(stub, small_volume, tmp_path):
    model = stub()
    out = tmp_path / "c.zarr"
    model.fail_after = 2 * 12
    with pytest.raises(RuntimeError, match="simulated"):
        predict(model, small_volume, output=out, chunk_z=2, **KW)
    assert zarr.open_group(str(partial_path(out)), mode="r")["done"][...].tolist() == [1, 0, 0, 0]
    model.fail_after, model.calls = None, 0
    predict(model, small_volume, output=out, chunk_z=2, overlap=0.5, **KW)  # other settings: redo all
    assert model.calls == 7 * len(tile_starts(40, 16, 0.5)) * len(tile_starts(52, 16, 0.5))
    ref = predict(model, small_volume, overlap=0.5, **KW)
    np.testing.assert_allclose(zarr.open_group(str(out), mode="r")["probabilities"][...], ref, **TOL)


def test_tta_reverses_slices_not_colours(stub):
    class First(stub):
        def forward(self, x):
            self.calls += x.shape[0]
            c = x[:, :1]
            return torch.cat([c, -c, c], 1)

    rng = np.random.default_rng(1)
    vol = rng.random((5, 24, 24, 3)).astype(np.float32)
    model = First(in_slices=3, colours=3)
    plain = predict(model, vol, **KW)[2]
    np.testing.assert_allclose(plain[1:4], vol[0:3, ..., 0], **TOL)  # channel 0 = slice z-1, colour 0
    tta = predict(model, vol, tta=True, **KW)[2]
    np.testing.assert_allclose(tta[1:4], (vol[0:3, ..., 0] + vol[2:5, ..., 0]) / 2, rtol=0, atol=2e-6)
    model.calls = 0
    predict(model, vol, tta=True, **KW)
    assert model.calls == 5 * 4 * 8  # 5 slices x 4 tiles x (4 flips x 2 z-orders)


def test_tta_leaves_a_flip_equivariant_model_unchanged(stub, small_volume):
    model = stub(kind="plus_one")
    np.testing.assert_allclose(predict(model, small_volume, tta=True, **KW), predict(model, small_volume, **KW), **TOL)


def test_dz_feeds_slices_two_apart(stub):
    class First(stub):
        def forward(self, x):
            c = x[:, :1]
            return torch.cat([c, -c, c], 1)

    vol = np.random.default_rng(2).random((9, 16, 16)).astype(np.float32)
    out = predict(First(in_slices=3), vol, dz=2, **KW)[2]
    np.testing.assert_allclose(out[2:], vol[:-2], **TOL)
    np.testing.assert_allclose(out[0], vol[2], **TOL)  # reflected: -2 -> 2


@pytest.mark.parametrize("z0,z1", [(0, 2), (3, 6), (5, 9)])
def test_predict_slices_sees_the_real_context_and_equals_the_whole_volume(stub, z0, z1):
    class First(stub):
        def forward(self, x):
            c = x[:, :1]
            return torch.cat([c, -c, c], 1)

    vol = np.random.default_rng(3).random((9, 16, 16)).astype(np.float32)
    whole = predict(First(in_slices=3), vol, dz=2, **KW)
    part = predict_slices(First(in_slices=3), vol, z0, z1, dz=2, **KW)  # reads only context_range's slices
    assert part.shape == (3, z1 - z0, 16, 16)
    np.testing.assert_allclose(part, whole[:, z0:z1], **TOL)
    assert context_range(z0, z1, 9, 3, 2) == (max(0, z0 - 2), min(9, z1 + 2))
    with pytest.raises(InputError, match="slice range"):
        predict_slices(First(in_slices=3), vol, 4, 10, **KW)


def test_writes_hdf5_and_tiff(stub, small_volume, tmp_path):
    import h5py
    import tifffile

    model = stub()
    ref = predict(model, small_volume, **KW)
    h5 = predict(model, small_volume, output=tmp_path / "p.h5", output_kind="both", **KW)
    with h5py.File(h5, "r") as f:
        np.testing.assert_allclose(f["probabilities"][...], ref, **TOL)
        np.testing.assert_array_equal(f["labels"][...], np.argmax(ref[:2], 0))
        assert json.loads(f.attrs["channels"]) == ["class0", "class1", "distance"]
    tif = predict(model, small_volume, output=tmp_path / "l.tif", output_kind="labels", **KW)
    np.testing.assert_array_equal(tifffile.imread(tif), np.argmax(ref[:2], 0))


def _no_outputs(tmp: Path) -> list[str]:
    return sorted(p.name for p in tmp.iterdir())


def test_bad_inputs_are_one_line_errors_with_nothing_written(stub, small_volume, tmp_path):
    gray = stub(in_slices=3)
    rgb = np.zeros((4, 16, 16, 3), np.uint8)
    with pytest.raises(InputError, match="input channels") as e:
        predict(gray, rgb, output=tmp_path / "a.zarr", **KW)
    assert "\n" not in str(e.value)
    with pytest.raises(InputError, match="input channels"):
        predict(gray, small_volume, k=5, output=tmp_path / "b.h5", **KW)
    with pytest.raises(InputError, match="TIFF holds one array"):
        predict(gray, small_volume, output=tmp_path / "c.tif", output_kind="both", **KW)
    with pytest.raises(InputError, match=r"\.zarr"):
        predict(gray, small_volume, output=tmp_path / "d.h5", chunk_z=2, **KW)
    with pytest.raises(InputError, match="multiple of 8"):
        predict(gray, small_volume, tile=12, **{k: v for k, v in KW.items() if k != "tile"})
    assert _no_outputs(tmp_path) == []
    existing = tmp_path / "e.zarr"
    existing.mkdir()
    (existing / "keep.txt").write_text("x")
    with pytest.raises(InputError, match="already exists"):
        predict(gray, small_volume, output=existing, chunk_z=2, **KW)
    assert _no_outputs(tmp_path) == ["e.zarr"] and (existing / "keep.txt").exists()
    predict(gray, small_volume, output=existing, chunk_z=2, overwrite=True, **KW)
    assert not (existing / "keep.txt").exists() and _no_outputs(tmp_path) == ["e.zarr"]


def test_2d_image_and_torch_input(stub):
    img = np.random.default_rng(5).integers(0, 256, (20, 30), dtype=np.uint8)
    probs = predict(stub(in_slices=1, kind="plus_one"), img, **KW)
    assert probs.shape == (3, 1, 20, 30)
    np.testing.assert_allclose(probs[2, 0], img / np.float32(255) + 1, rtol=0, atol=2e-6)
    vol = torch.rand(3, 16, 16)
    np.testing.assert_allclose(predict(stub(kind="plus_one"), vol, **KW)[2], vol.numpy() + 1, rtol=0, atol=2e-6)


def test_zarr_output_streams_in_default_chunks_of_16(stub, tmp_path):
    vol = np.random.default_rng(6).integers(0, 256, (20, 16, 24), dtype=np.uint8)
    model = stub()
    ref = predict(model, vol, **KW)
    seen: list[int] = []
    out = predict(model, vol, output=tmp_path / "z.zarr", on_chunk=seen.append, **KW)
    arr = zarr.open_group(str(out), mode="r")["probabilities"]
    assert seen == [0, 1] and arr.chunks[:2] == (1, 16)
    np.testing.assert_allclose(arr[...], ref, **TOL)
