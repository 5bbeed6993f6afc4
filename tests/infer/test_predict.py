import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from slicewise.data.io.predictions import read_prediction
from slicewise.data.io.stores import labels_from
from slicewise.errors import InputError
from slicewise.infer.predict import make_plan, predict, predict_to
from slicewise.infer.settings import PredictSettings

TOL = dict(rtol=0, atol=1e-6)
KW = dict(tile=16, batch_size=5, progress=False, device="cpu")


@settings(max_examples=25, deadline=None)
@given(
    z=st.integers(1, 5),
    y=st.integers(3, 45),
    x=st.integers(3, 45),
    tile=st.sampled_from([8, 16, 24]),
    overlap=st.sampled_from([0.0, 0.25, 0.5, 0.75]),
    batch=st.integers(1, 7),
    k=st.sampled_from([1, 3]),
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


def test_settings_object_and_overrides_give_the_same_result(stub, small_volume):
    model = stub()
    s = PredictSettings(tile=16, batch_size=5, progress=False, device="cpu", block=(2, 20, 20))
    np.testing.assert_array_equal(
        predict(model, small_volume, s), predict(model, small_volume, **KW, block=(2, 20, 20))
    )
    np.testing.assert_allclose(
        predict(model, small_volume, s, overlap=0.5), predict(model, small_volume, overlap=0.5, **KW), **TOL
    )
    with pytest.raises(InputError, match="unknown prediction setting"):
        predict(model, small_volume, s, chunk_z=4)


@pytest.mark.parametrize(
    "name,kind",
    [("p.zarr", "both"), ("p.h5", "both"), ("p.tif", "probabilities"), ("l.tif", "labels"), ("l.zarr", "labels")],
)
@pytest.mark.parametrize("block", [(2, 16, 20), (7, 40, 52), (3, 9, 100)])
def test_store_equals_in_memory_for_every_backend_and_block(stub, small_volume, tmp_path, name, kind, block):
    model = stub()
    ref = predict(model, small_volume, **KW)
    out = predict_to(model, small_volume, tmp_path / name, output_kind=kind, block=block, **KW)
    assert out == tmp_path / name and sorted(p.name for p in tmp_path.iterdir()) == [
        name
    ]  # no partial, lock or state left
    with read_prediction(out) as pred:
        if kind != "labels":
            np.testing.assert_allclose(pred.probabilities[...], ref, **TOL)
            np.testing.assert_allclose(pred.probabilities[1, 2:4], ref[1, 2:4], **TOL)  # lazy partial reads
            assert pred.channels == ["class0", "class1", "distance"]
        else:
            assert pred.probabilities is None
        if kind != "probabilities":
            plan = make_plan(model, small_volume.shape, **KW)
            np.testing.assert_array_equal(np.asarray(pred.labels[...]), labels_from(ref, plan))
            assert 0 < np.asarray(pred.labels[...]).mean() < 1  # both classes somewhere
        assert pred.offset == (0, 0, 0)


def test_channel_names_come_from_the_model_config(stub, small_volume, tmp_path):
    from slicewise.config import ModelConfig

    model = stub()
    model.config = ModelConfig(classes=2, class_names=("background", "membrane"), extra_heads=("distance",))
    out = predict_to(model, small_volume, tmp_path / "n.h5", **KW)
    assert read_prediction(out).channels == ["background", "membrane", "distance"]


def test_z_range_reads_its_context_and_equals_the_whole_volume(stub):
    class First(stub):
        def forward(self, x):
            c = x[:, :1]
            return torch.cat([c, -c, c], 1)

    vol = np.random.default_rng(3).random((24, 16, 16)).astype(np.float32)
    whole = predict(First(in_slices=3), vol, dz=2, **KW)
    part = predict(First(in_slices=3), vol, dz=2, roi="16:20", **KW)
    assert part.shape == (3, 4, 16, 16)
    np.testing.assert_allclose(part, whole[:, 16:20], **TOL)
    np.testing.assert_allclose(part[2], vol[14:18], **TOL)  # channel 0 = slice z - 2, read from outside the range
    with pytest.raises(InputError, match="empty"):
        predict(First(in_slices=3), vol, roi="20:16", **KW)


def test_roi_offset_is_recorded_in_the_store_and_the_ngff_translation(stub, small_volume, tmp_path):
    model = stub()
    whole = predict(model, small_volume, **KW)
    out = predict_to(model, small_volume, tmp_path / "r.zarr", roi="2:5,8:40,:30", block=(2, 16, 16), **KW)
    pred = read_prediction(out)
    assert pred.offset == (2, 8, 0)
    np.testing.assert_allclose(pred.probabilities[...], whole[:, 2:5, 8:40, :30], **TOL)
    import zarr

    ms = zarr.open_group(str(out), mode="r").attrs["multiscales"][0]
    tr = [t for t in ms["datasets"][0]["coordinateTransformations"] if t["type"] == "translation"][0]
    assert tr["translation"] == [0.0, 2.0, 8.0, 0.0]
    for name in ("r.h5", "r.tif"):
        other = read_prediction(predict_to(model, small_volume, tmp_path / name, roi="2:5,8:40,:30", **KW))
        assert other.offset == (2, 8, 0)
        np.testing.assert_allclose(other.probabilities[...], whole[:, 2:5, 8:40, :30], **TOL)
        other.close()


def test_tta_reverses_slices_not_colors(stub):
    class First(stub):
        def forward(self, x):
            self.calls += x.shape[0]
            c = x[:, :1]
            return torch.cat([c, -c, c], 1)

    rng = np.random.default_rng(1)
    vol = rng.random((5, 24, 24, 3)).astype(np.float32)
    model = First(in_slices=3, colors=3)
    plain = predict(model, vol, **KW)[2]
    np.testing.assert_allclose(plain[1:4], vol[0:3, ..., 0], **TOL)  # channel 0 = slice z-1, color 0
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
    out = predict(First(in_slices=3), vol, dz=2, block=(2, 16, 16), **KW)[2]
    np.testing.assert_allclose(out[2:], vol[:-2], **TOL)
    np.testing.assert_allclose(out[0], vol[2], **TOL)  # reflected: -2 -> 2


def test_2d_image_and_torch_input(stub):
    img = np.random.default_rng(5).integers(0, 256, (20, 30), dtype=np.uint8)
    probs = predict(stub(in_slices=1, kind="plus_one"), img, **KW)
    assert probs.shape == (3, 1, 20, 30)
    np.testing.assert_allclose(probs[2, 0], img / np.float32(255) + 1, rtol=0, atol=2e-6)
    vol = torch.rand(3, 16, 16)
    np.testing.assert_allclose(predict(stub(kind="plus_one"), vol, **KW)[2], vol.numpy() + 1, rtol=0, atol=2e-6)


@pytest.mark.parametrize(
    "override,match",
    [
        (dict(tile=0), "tile"),
        (dict(tile="a"), "tile"),
        (dict(overlap=1.0), "overlap"),
        (dict(overlap=-0.1), "overlap"),
        (dict(batch_size=0), "batch size"),
        (dict(block=(0, 8, 8)), "block shape"),
        (dict(block="4,4"), "block shape"),
        (dict(dz=0), "dz"),
        (dict(k=2), "odd"),
        (dict(border="skip"), "skip"),
        (dict(output_kind="mask"), "output kind"),
        (dict(dtype="int8"), "dtype"),
        (dict(normalize="zscore"), "normalize"),
        (dict(dask="nowhere"), "address"),
        (dict(roi="1:2:3"), "range"),
        (dict(tile=12), "multiple of 8"),
    ],
)
def test_bad_settings_are_one_line_errors_before_any_compute(stub, small_volume, tmp_path, override, match):
    model = stub()
    with pytest.raises(InputError, match=match) as e:
        predict_to(model, small_volume, tmp_path / "o.zarr", **{**KW, **override})
    assert "\n" not in str(e.value) and model.calls == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_bad_inputs_are_one_line_errors_with_nothing_written(stub, small_volume, tmp_path):
    gray = stub(in_slices=3)
    rgb = np.zeros((4, 16, 16, 3), np.uint8)
    with pytest.raises(InputError, match="input channels") as e:
        predict_to(gray, rgb, tmp_path / "a.zarr", **KW)
    assert "\n" not in str(e.value)
    with pytest.raises(InputError, match="input channels"):
        predict_to(gray, small_volume, tmp_path / "b.h5", k=5, **KW)
    with pytest.raises(InputError, match="TIFF holds one array"):
        predict_to(gray, small_volume, tmp_path / "c.tif", output_kind="both", **KW)
    with pytest.raises(InputError, match="unknown extension"):
        predict_to(gray, small_volume, tmp_path / "c.npy", **KW)
    with pytest.raises(InputError, match="unbounded"):
        predict_to(gray, small_volume, tmp_path / "d.zarr", dtype="uint8", **KW)
    with pytest.raises(InputError, match="predict_to"):
        predict(gray, small_volume, dask="local:2", **KW)
    with pytest.raises(InputError, match="file path"):
        predict_to(gray, small_volume, tmp_path / "e.zarr", dask="local:2", **KW)
    assert sorted(p.name for p in tmp_path.iterdir()) == [] and gray.calls == 0
    existing = tmp_path / "e.zarr"
    existing.mkdir()
    (existing / "keep.txt").write_text("x")
    with pytest.raises(InputError, match="already exists"):
        predict_to(gray, small_volume, existing, **KW)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.zarr"] and (existing / "keep.txt").exists()
    with pytest.raises(InputError, match="not replaced even with --overwrite"):  # a plain folder is not a Zarr store
        predict_to(gray, small_volume, existing, overwrite=True, **KW)
    assert (existing / "keep.txt").exists()
    (existing / ".zgroup").write_text('{"zarr_format": 2}')  # a Zarr store holding a user's file: still not replaced
    with pytest.raises(InputError, match="holds files slicewise did not write"):
        predict_to(gray, small_volume, existing, overwrite=True, **KW)
    assert (existing / "keep.txt").exists()
    (existing / "keep.txt").unlink()  # a Zarr store of nothing but Zarr files (an earlier output) is replaced
    predict_to(gray, small_volume, existing, overwrite=True, **KW)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.zarr"] and (existing / "0").is_dir()


def test_nan_found_in_a_late_block_leaves_no_output_and_no_partial(stub, tmp_path):
    vol = np.random.default_rng(0).random((6, 16, 16)).astype(np.float32)
    vol[5, 3, 3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        predict_to(stub(), vol, tmp_path / "n.zarr", block=(2, 16, 16), **KW)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_status_names_the_region_predicted_and_tiles_progress_inside_one_block(
    stub, small_volume, tmp_path, caplog, monkeypatch
):
    """`--z 2:5` predicts 3 slices, not the whole stack; one block still reports progress tile by tile."""
    import logging

    from slicewise.infer.predict import predict_to

    monkeypatch.delenv("SLICEWISE_NO_PROGRESS", raising=False)
    caplog.set_level(logging.INFO, logger="slicewise")
    model = stub()
    predict_to(
        model,
        small_volume,
        tmp_path / "p.zarr",
        tile=16,
        overlap=0.25,
        batch_size=2,
        device="cpu",
        roi="2:5",
        block=(8, 64, 64),
    )
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith("predicting 3×40×52 (z 2:5) into ") and ": 1 block(s)" in line for line in lines), lines
    ticks = [line for line in lines if line.startswith("predict: ") and " tiles, " in line]
    assert len(ticks) >= 5 and ticks[-1].startswith(f"predict: {model.calls}/{model.calls} (100%) tiles")
    caplog.clear()
    predict_to(stub(), small_volume, tmp_path / "q.zarr", tile=16, device="cpu", roi="0:7,8:40,:")
    assert any(r.getMessage().startswith("predicting 7×32×52 (y 8:40) into ") for r in caplog.records)
    import zarr

    env = zarr.open_group(str(tmp_path / "p.zarr"), mode="r").attrs["slicewise"]["environment"]
    assert env["device"]["type"] == "cpu" and env["versions"]["torch"] and env["threads"]["torch"] >= 1
