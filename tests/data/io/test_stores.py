"""Stores: block-writable arrays, prediction writers (OME-Zarr / HDF5 / TIFF), quantization, read_prediction."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st

from slicewise.config import ModelConfig
from slicewise.data.io import open_volume, write_volume
from slicewise.data.io.predictions import UINT8_SCALE, dequantize, quantize, read_prediction
from slicewise.data.io.stores import (
    PredictionWriter,
    chunk_for,
    create_array_store,
    open_prediction_writer,
    partial_path,
)
from slicewise.errors import InputError
from slicewise.infer.blocks import Plan, plan_blocks
from slicewise.infer.predict import make_plan, predict, predict_to

KW = dict(tile=16, batch_size=5, progress=False, device="cpu")


@pytest.mark.parametrize("name,key", [("a.zarr", None), ("g.zarr", "seg"), ("a.h5", "seg"), ("a.tif", None)])
def test_array_store_writes_blocks_then_publishes_atomically(tmp_path, name, key):
    data = np.random.default_rng(0).integers(0, 1000, (5, 30, 41)).astype(np.uint16)
    out = tmp_path / name
    store = create_array_store(
        out, data.shape, data.dtype, chunks=(2, 16, 16), key=key, attrs={"what": "labels", "n": 3}
    )
    child = subprocess.run(  # a second process writing the same output is refused in one line
        [
            sys.executable,
            "-c",
            f"from slicewise.data.io.stores import create_array_store as c; c({str(out)!r}, (1, 1, 1), 'uint8')",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert child.returncode != 0 and "InputError: output" in child.stderr and "being written by another" in child.stderr
    for b in plan_blocks(data.shape, (2, 16, 16)):
        store[b.out] = data[b.out]
    assert not out.exists()
    np.testing.assert_array_equal(store[1:3, 5:20, :], data[1:3, 5:20, :])
    assert store.finalize() == out
    vol = open_volume(out, key=key)
    np.testing.assert_array_equal(vol[...], data)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
    with pytest.raises(InputError, match="already exists"):
        create_array_store(out, data.shape, data.dtype, key=key)


def test_array_store_abort_leaves_nothing(tmp_path):
    store = create_array_store(tmp_path / "x.h5", (2, 3, 4), "uint8")
    store[0:1] = np.ones((1, 3, 4), np.uint8)
    store.abort()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InputError, match="unknown extension"):
        create_array_store(tmp_path / "x.npy", (2, 3, 4), "uint8")


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_uint8_quantization_error_is_at_most_half_a_step(seed):
    p = np.random.default_rng(seed).random((4, 7, 9)).astype(np.float32)
    p.flat[:3] = [0.0, 1.0, 0.5 / 255]
    back = dequantize(quantize(p, "uint8"), UINT8_SCALE)
    assert back.dtype == np.float32 and np.abs(back - p).max() <= 1 / 510 + 1e-7
    assert np.abs(dequantize(quantize(p, "float16"), None) - p).max() <= 2.0**-11


@pytest.mark.parametrize("name", ["q.zarr", "q.h5", "q.tif"])
def test_uint8_and_float16_predictions_read_back_within_their_bound(stub, small_volume, tmp_path, name):
    model = stub(extra="boundary")
    ref = predict(model, small_volume, **KW)
    for dtype, bound in (("uint8", 1 / 510), ("float16", 2.0**-11)):
        out = predict_to(model, small_volume, tmp_path / f"{dtype}-{name}", dtype=dtype, block=(3, 20, 30), **KW)
        pred = read_prediction(out)
        p = pred.probabilities[...]
        assert p.dtype == np.float32 and np.abs(p - ref).max() <= bound + 1e-7
        assert np.abs(p - ref).max() > 0  # it really was quantized
        pred.close()
    if name.endswith(".zarr"):
        g = zarr.open_group(str(tmp_path / f"uint8-{name}"), mode="r")
        assert g["0"].dtype == np.uint8 and g.attrs["slicewise"]["quantisation"] == {"scale": UINT8_SCALE}


def test_ome_zarr_output_is_found_by_the_ome_zarr_reader_with_scales_names_and_labels(stub, tmp_path):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import OMERO, Multiscales, Reader

    vol = np.random.default_rng(2).integers(0, 256, (4, 150, 140), dtype=np.uint8)
    src = write_volume(tmp_path / "in.tif", vol, voxel_size=(40.0, 4.0, 4.0))
    model = stub(extra="boundary")
    model.config = ModelConfig(classes=2, class_names=("cytoplasm", "membrane"), extra_heads=("boundary",))
    out = predict_to(
        model,
        src,
        tmp_path / "o.zarr",
        output_kind="both",
        block=(2, 64, 64),
        tile=32,
        batch_size=8,
        progress=False,
        device="cpu",
    )
    nodes = list(Reader(parse_url(str(out)))())
    image = nodes[0]
    assert any(isinstance(s, Multiscales) for s in image.specs) and any(isinstance(s, OMERO) for s in image.specs)
    assert [tuple(d.shape) for d in image.data] == [(3, 4, 150, 140), (3, 4, 75, 70)]
    assert image.metadata["channel_names"] == ["cytoplasm", "membrane", "boundary"]
    assert image.metadata["coordinateTransformations"][0][0]["scale"] == [1.0, 40.0, 4.0, 4.0]
    assert image.metadata["coordinateTransformations"][1][0]["scale"] == [1.0, 40.0, 8.0, 8.0]
    labels = [n for n in nodes if "labels" in str(n.zarr.path)]
    assert labels and any(tuple(d.shape) == (4, 150, 140) for n in labels for d in n.data)
    g = zarr.open_group(str(out), mode="r")
    assert g["labels"].attrs["labels"] == ["labels"]
    pred = read_prediction(out)
    assert pred.voxel_size == (40.0, 4.0, 4.0) and pred.channels == ["cytoplasm", "membrane", "boundary"]
    meta = g.attrs["slicewise"]
    assert meta["input"]["shape"] == [4, 150, 140] and meta["predict"]["tile"] == [32, 32]
    labels0 = np.asarray(pred.labels[...])
    np.testing.assert_array_equal(labels0, np.argmax(np.asarray(pred.probabilities[:2]), 0))
    assert open_volume(out).shape == (4, 150, 140, 3)  # the data layer opens the NGFF image (level 0, channel-last)


def test_labels_only_zarr_is_the_root_image_and_a_label_image(stub, small_volume, tmp_path):
    out = predict_to(stub(), small_volume, tmp_path / "l.zarr", output_kind="labels", **KW)
    g = zarr.open_group(str(out), mode="r")
    assert [a["name"] for a in g.attrs["multiscales"][0]["axes"]] == ["z", "y", "x"]
    np.testing.assert_array_equal(g["0"][...], g["labels"]["labels"]["0"][...])
    pred = read_prediction(out)
    assert pred.probabilities is None and pred.labels.shape == small_volume.shape


def test_read_prediction_reads_older_layouts(tmp_path):
    p = np.random.default_rng(0).random((2, 3, 8, 9)).astype(np.float32)
    lab = p.argmax(0).astype(np.uint8)
    g = zarr.open_group(str(tmp_path / "old.zarr"), mode="w", zarr_format=2)
    g.create_array("probabilities", data=p)
    g.create_array("labels", data=lab)
    g.attrs["channels"] = ["bg", "fg"]
    pred = read_prediction(tmp_path / "old.zarr")
    np.testing.assert_array_equal(pred.probabilities[...], p)
    np.testing.assert_array_equal(pred.labels[...], lab)
    assert pred.channels == ["bg", "fg"] and pred.offset == (0, 0, 0)
    import h5py

    with h5py.File(tmp_path / "old.h5", "w") as f:
        f["probabilities"] = p
        f.attrs["channels"] = json.dumps(["bg", "fg"])
        f.attrs["slicewise_predict"] = json.dumps({"tile": [16, 16]})
    with read_prediction(tmp_path / "old.h5") as pred:
        np.testing.assert_array_equal(pred.probabilities[0, 1], p[0, 1])
        assert pred.labels is None and pred.channels == ["bg", "fg"]
    write_volume(tmp_path / "old.tif", np.moveaxis(p, 0, -1))  # compressed TIFF, channel-last
    np.testing.assert_array_equal(read_prediction(tmp_path / "old.tif").probabilities[...], p)
    write_volume(tmp_path / "lab.tif", lab)
    pred = read_prediction(tmp_path / "lab.tif")
    assert pred.probabilities is None and np.array_equal(np.asarray(pred.labels), lab)
    with pytest.raises(InputError, match="does not exist"):
        read_prediction(tmp_path / "missing.zarr")
    with pytest.raises(InputError, match="no array 'nope'"):
        read_prediction(tmp_path / "old.zarr", key="nope")


def test_writer_reopens_from_its_partial_and_refuses_to_finalize_incomplete(stub, small_volume, tmp_path):
    model = stub()
    plan = make_plan(model, small_volume.shape, block=(3, 40, 52), **KW)
    out = tmp_path / "w.zarr"
    writer = open_prediction_writer(out, plan)
    blocks = plan_blocks(small_volume.shape, plan.block)
    probs = predict(model, small_volume, **KW)
    writer.write_block(blocks[0], probs[(slice(None), *blocks[0].out)])
    writer.mark_done(0)
    other = PredictionWriter.reopen(partial_path(out), Plan.from_json)  # e.g. a dask worker
    assert other.done() == {0} and other.backend == "zarr"
    other.write_block(blocks[2], probs[(slice(None), *blocks[2].out)])
    other.mark_done(2)
    with pytest.raises(InputError, match="incomplete"):
        writer.finalize()
    writer = open_prediction_writer(out, plan)  # the failed finalize released the claim; reopening resumes
    assert writer.done() == {0, 2}
    writer.write_block(blocks[1], probs[(slice(None), *blocks[1].out)])
    writer.mark_done(1)
    writer.finalize()
    np.testing.assert_array_equal(read_prediction(out).probabilities[...], probs)


def test_zarr_chunks_divide_the_block_so_no_chunk_is_shared(stub, small_volume, tmp_path):
    assert [chunk_for(b, 256) for b in (100, 1024, 768, 257, 1000)] == [100, 256, 256, 257, 250]
    assert chunk_for(32, 16) == 16 and chunk_for(7, 16) == 7
    out = predict_to(stub(), np.tile(small_volume, (1, 8, 8)), tmp_path / "c.zarr", block=(6, 320, 512), **KW)
    assert zarr.open_group(str(out), mode="r")["0"].chunks == (1, 6, 160, 208)  # block x clipped to 416 = 2 × 208


# --- axis orders follow the file's own metadata, never a guess; every zarr chunk is written ---


@pytest.mark.parametrize(
    "kw, stored",
    [
        ({"metadata": {"axes": "CZYX"}}, lambda p: p),
        ({"metadata": {"axes": "ZYXC"}}, lambda p: np.moveaxis(p, 0, -1)),
        ({"ome": True, "metadata": {"axes": "CZYX"}}, lambda p: p),
        ({"imagej": True, "metadata": {"axes": "ZCYX"}}, lambda p: np.ascontiguousarray(np.moveaxis(p, 0, 1))),
    ],
)
def test_tiff_probabilities_follow_the_declared_axes(tmp_path, kw, stored):
    import tifffile

    p = np.random.default_rng(1).random((3, 8, 16, 12)).astype(np.float32)
    tifffile.imwrite(tmp_path / "p.tif", stored(p), **kw)
    probs = read_prediction(tmp_path / "p.tif").probabilities
    assert probs.shape == (3, 8, 16, 12)
    np.testing.assert_array_equal(probs[...], p)
    np.testing.assert_array_equal(probs[1, 2:5, 3], p[1, 2:5, 3])
    np.testing.assert_array_equal(probs[:, 4], p[:, 4])


def test_a_4d_tiff_without_axes_is_refused_naming_the_fix(tmp_path):
    import tifffile

    tifffile.imwrite(tmp_path / "p.tif", np.zeros((3, 8, 16, 12), np.float32))
    with pytest.raises(InputError, match="would be a guess.*metadata=\\{'axes': 'CZYX'\\}"):
        read_prediction(tmp_path / "p.tif")
    tifffile.imwrite(tmp_path / "q.tif", np.zeros((3, 8, 16, 12), np.float32), metadata={"axes": "CZXY"})
    with pytest.raises(InputError, match="do not describe"):
        read_prediction(tmp_path / "q.tif")


def test_predict_to_tiff_reads_back_as_written(stub, small_volume, tmp_path):
    model = stub(extra="boundary")
    out = predict_to(model, small_volume, tmp_path / "p.tif", block=(3, 20, 30), **KW)
    np.testing.assert_allclose(read_prediction(out).probabilities[...], predict(model, small_volume, **KW), atol=1e-6)


def test_zarr_predictions_store_every_chunk(stub, small_volume, tmp_path):
    out = predict_to(stub(), small_volume, tmp_path / "p.zarr", block=(3, 20, 30), **KW)
    for name in ("0", "1", "labels/labels/0"):
        if (out / name).exists():
            arr = zarr.open_array(str(out / name), mode="r")
            assert arr.nchunks_initialized == arr.nchunks
