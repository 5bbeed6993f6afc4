"""OME-Zarr: NGFF v0.4 writing (checked with the ``ome-zarr`` reference reader), pyramids, reading v0.4/v0.5."""

from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from ome_zarr.axes import Axes
from ome_zarr.format import FormatV04
from ome_zarr.io import parse_url
from ome_zarr.reader import Label, Labels, Multiscales, Reader

from slicewise.cli import main
from slicewise.data.io import ngff as oz
from slicewise.data.io import open_volume
from slicewise.errors import InputError

logging.getLogger("ome_zarr").setLevel(logging.ERROR)


def _write_prediction(
    path: Path,
    probs: np.ndarray,
    *,
    voxel_size: Any = (30.0, 4.0, 4.0),
    names: Any = ("background", "membrane"),
    offset: Any = None,
    min_size: int = 8,
) -> int:
    """Probabilities (C, Z, Y, X) + argmax labels as NGFF, the way a prediction writer uses this module."""
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    root.create_array("0", data=probs, chunks=(1, 2, 16, 16))
    n = oz.build_pyramid(root, method="mean", min_size=min_size)
    oz.write_image_metadata(
        root,
        axes=("c", "z", "y", "x"),
        voxel_size=voxel_size,
        n_levels=n,
        channel_names=names,
        name="prediction",
        offset_zyx=offset,
    )
    lab = root.require_group("labels").require_group("labels")
    lab.create_array("0", data=probs.argmax(0).astype(np.uint8), chunks=(2, 16, 16))
    m = oz.build_pyramid(lab, method="mode", n_levels=n, min_size=min_size)
    oz.write_labels_metadata(root, "labels", voxel_size=voxel_size, n_levels=m, offset_zyx=offset)
    return n


@pytest.fixture
def probs() -> np.ndarray:
    p = np.random.default_rng(0).random((2, 3, 70, 45)).astype(np.float32)
    return p / p.sum(0, keepdims=True)


def _check_ngff_v04(ms: dict[str, Any], ndim: int, n_levels: int) -> None:
    """The NGFF v0.4 rules slicewise relies on (what napari-ome-zarr and neuroglancer need)."""
    assert ms["version"] == "0.4"
    Axes(ms["axes"], fmt=FormatV04()).validate()  # names, types, order, units (raises ValueError)
    types = [a["type"] for a in ms["axes"]]
    order = {"time": 0, "channel": 1, "space": 2}
    assert [order[t] for t in types] == sorted(order[t] for t in types)
    assert 2 <= types.count("space") <= 3 and len(types) == ndim
    assert [d["path"] for d in ms["datasets"]] == [str(i) for i in range(n_levels)]
    transforms = [d["coordinateTransformations"] for d in ms["datasets"]]
    FormatV04().validate_coordinate_transformations(ndim, n_levels, transforms)
    for t in transforms:
        kinds = [x["type"] for x in t]
        assert kinds in (["scale"], ["scale", "translation"])  # translation after scale


def test_reference_reader_finds_image_scales_names_labels(tmp_path: Path, probs: np.ndarray) -> None:
    n = _write_prediction(tmp_path / "p.zarr", probs)
    assert n == 3  # 70×45 → 35×23 → 18×12 (then 9×6 < 8 is refused)
    nodes = list(Reader(parse_url(str(tmp_path / "p.zarr")))())
    image = next(nd for nd in nodes if nd.load(Multiscales) and not nd.load(Label))
    assert [d.shape for d in image.data] == [(2, 3, 70, 45), (2, 3, 35, 23), (2, 3, 18, 12)]
    assert image.metadata["channel_names"] == ["background", "membrane"]
    assert [a["name"] for a in image.metadata["axes"]] == ["c", "z", "y", "x"]
    np.testing.assert_array_equal(np.asarray(image.data[0]), probs)
    assert any(nd.load(Labels) for nd in nodes)
    label = next(nd for nd in nodes if nd.load(Label))
    assert [d.shape for d in label.data] == [(3, 70, 45), (3, 35, 23), (3, 18, 12)]
    np.testing.assert_array_equal(np.asarray(label.data[0]), probs.argmax(0))


def test_metadata_follows_ngff_v04(tmp_path: Path, probs: np.ndarray) -> None:
    n = _write_prediction(tmp_path / "p.zarr", probs, offset=(5, 10, 20))
    attrs = json.loads((tmp_path / "p.zarr" / ".zattrs").read_text())
    ms = attrs["multiscales"][0]
    _check_ngff_v04(ms, 4, n)
    assert [a.get("unit") for a in ms["axes"]] == [None, "nanometer", "nanometer", "nanometer"]
    for level, ds in enumerate(ms["datasets"]):
        scale, trans = (t[t["type"]] for t in ds["coordinateTransformations"])
        assert scale == [1.0, 30.0, 4.0 * 2**level, 4.0 * 2**level]
        centre = (2**level - 1) / 2  # a level-l pixel's centre in level-0 pixels (mean pyramid)
        assert trans == pytest.approx([0.0, 5 * 30.0, (10 + centre) * 4.0, (20 + centre) * 4.0])
    labels_ms = json.loads((tmp_path / "p.zarr" / "labels" / "labels" / ".zattrs").read_text())
    _check_ngff_v04(labels_ms["multiscales"][0], 3, n)
    assert labels_ms["image-label"]["source"] == {"image": "../../"}
    assert json.loads((tmp_path / "p.zarr" / "labels" / ".zattrs").read_text()) == {"labels": ["labels"]}
    assert json.loads((tmp_path / "p.zarr" / ".zgroup").read_text())["zarr_format"] == 2


def test_no_voxel_size_no_unit_and_stride_has_no_shift(tmp_path: Path) -> None:
    root = zarr.open_group(str(tmp_path / "s.zarr"), mode="w", zarr_format=2)
    root.create_array("0", data=np.arange(4 * 32 * 32, dtype=np.uint16).reshape(4, 32, 32), chunks=(4, 8, 8))
    n = oz.build_pyramid(root, method="stride", min_size=4)
    oz.write_image_metadata(root, axes="zyx", voxel_size=None, n_levels=n, method="stride")
    ms = root.attrs["multiscales"][0]
    _check_ngff_v04(ms, 3, n)
    assert n == 4 and all("unit" not in a for a in ms["axes"])
    assert [d["coordinateTransformations"] for d in ms["datasets"]][2] == [{"type": "scale", "scale": [1.0, 4.0, 4.0]}]
    np.testing.assert_array_equal(root["2"][:], root["0"][:, ::4, ::4])
    vol = open_volume(tmp_path / "s.zarr")
    assert vol.voxel_size is None and vol.shape == (4, 32, 32)


def test_channel_name_count_must_match(tmp_path: Path) -> None:
    root = zarr.open_group(str(tmp_path / "c.zarr"), mode="w", zarr_format=2)
    root.create_array("0", shape=(3, 1, 8, 8), dtype="f4")
    with pytest.raises(InputError, match="2 channel names"):
        oz.write_image_metadata(root, axes="czyx", voxel_size=None, n_levels=1, channel_names=["a", "b"])
    with pytest.raises(InputError, match="axes"):
        oz.write_image_metadata(root, axes="zcyx", voxel_size=None, n_levels=1)


def test_open_volume_levels_keys_and_channels(tmp_path: Path, probs: np.ndarray) -> None:
    _write_prediction(tmp_path / "p.zarr", probs)
    vol = open_volume(tmp_path / "p.zarr")
    assert vol.shape == (3, 70, 45, 2) and vol.voxel_size == (30.0, 4.0, 4.0)  # channel-last
    np.testing.assert_array_equal(vol[1, 5:9, :, 1], probs[1, 1, 5:9])
    np.testing.assert_array_equal(vol[...], np.moveaxis(probs, 0, -1))
    lv2 = open_volume(f"{tmp_path / 'p.zarr'}:2")
    assert lv2.shape == (3, 18, 12, 2) and lv2.voxel_size == (30.0, 16.0, 16.0)
    assert open_volume(tmp_path / "p.zarr" / "1").voxel_size == (30.0, 8.0, 8.0)  # a path inside the image
    assert open_volume(tmp_path / "p.zarr", key="1").shape == (3, 35, 23, 2)
    lab = open_volume(f"{tmp_path / 'p.zarr'}:labels/labels/1")
    assert lab.shape == (3, 35, 23) and lab.voxel_size == (30.0, 8.0, 8.0)
    assert open_volume(f"{tmp_path / 'p.zarr'}:labels/labels").shape == (3, 70, 45)
    again = pickle.loads(pickle.dumps(lab))  # workers re-open by (path, key)
    np.testing.assert_array_equal(again[...], lab[...])
    with pytest.raises(InputError, match="no pyramid level 7"):
        oz.open_ome_zarr(tmp_path / "p.zarr", 7)


def test_single_channel_is_gray_and_time_series_refused(tmp_path: Path) -> None:
    root = zarr.open_group(str(tmp_path / "g.zarr"), mode="w", zarr_format=2)
    data = np.random.default_rng(1).integers(0, 255, (1, 1, 2, 9, 7), dtype=np.uint8)
    root.create_array("0", data=data)
    oz.write_image_metadata(root, axes="tczyx", voxel_size=(40, 5, 5), n_levels=1)
    vol = open_volume(tmp_path / "g.zarr")
    assert vol.shape == (2, 9, 7)
    np.testing.assert_array_equal(vol[:, 3], data[0, 0, :, 3])
    root2 = zarr.open_group(str(tmp_path / "t.zarr"), mode="w", zarr_format=2)
    root2.create_array("0", shape=(3, 1, 2, 9, 7), dtype="u1")
    oz.write_image_metadata(root2, axes="tczyx", voxel_size=None, n_levels=1)
    with pytest.raises(InputError, match="time series"):
        open_volume(tmp_path / "t.zarr")


def test_reads_reference_writer_output(tmp_path: Path) -> None:
    from ome_zarr.writer import write_image

    data = np.random.default_rng(2).integers(0, 4000, (3, 2, 64, 48), dtype=np.uint16)  # c, z, y, x
    group = zarr.open_group(str(tmp_path / "ref.zarr"), mode="w", zarr_format=2)
    write_image(
        data,
        group,
        axes="czyx",
        scale_factors=(2, 4),
        fmt=FormatV04(),
        scale={"c": 1.0, "z": 0.05, "y": 0.004, "x": 0.004},
        axes_units=dict.fromkeys("zyx", "micrometer"),
    )
    assert oz.is_ome_zarr(tmp_path / "ref.zarr")
    vol = open_volume(tmp_path / "ref.zarr")
    assert vol.shape == (2, 64, 48, 3) and vol.voxel_size == pytest.approx((50.0, 4.0, 4.0))
    np.testing.assert_array_equal(vol[...], np.moveaxis(data, 0, -1))
    lv = oz.levels(tmp_path / "ref.zarr")
    assert [x["shape"] for x in lv] == [(3, 2, 64, 48), (3, 2, 32, 24), (3, 2, 16, 12)]
    assert open_volume(f"{tmp_path / 'ref.zarr'}:s2").voxel_size == pytest.approx((50.0, 16.0, 16.0))


def test_reads_ngff_v05_zarr_v3(tmp_path: Path) -> None:
    root = zarr.open_group(str(tmp_path / "v5.zarr"), mode="w", zarr_format=3)
    data = np.arange(2 * 16 * 12, dtype=np.float32).reshape(2, 16, 12)
    root.create_array("s0", data=data)
    root.create_array("s1", data=data[:, ::2, ::2])
    axes = [{"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"]
    datasets = [
        {"path": f"s{i}", "coordinateTransformations": [{"type": "scale", "scale": [0.03, 0.004 * 2**i, 0.004 * 2**i]}]}
        for i in range(2)
    ]
    root.attrs["ome"] = {
        "version": "0.5",
        "multiscales": [
            {"axes": axes, "datasets": datasets, "coordinateTransformations": [{"type": "scale", "scale": [2, 1, 1]}]}
        ],
    }
    assert oz.is_ome_zarr(tmp_path / "v5.zarr")
    vol = open_volume(tmp_path / "v5.zarr")
    assert vol.voxel_size == pytest.approx((60.0, 4.0, 4.0))  # dataset scale × multiscale-wide scale, µm → nm
    np.testing.assert_array_equal(vol[...], data)
    assert open_volume(f"{tmp_path / 'v5.zarr'}:s1").shape == (2, 8, 6)
    assert not oz.is_ome_zarr(tmp_path / "v5.zarr" / "s0")


def _reference_downsample(a: np.ndarray, method: str) -> np.ndarray:
    """Window by window over the pixels that exist (slow, obviously right)."""
    h, w = a.shape[-2:]
    out = np.zeros((*a.shape[:-2], -(-h // 2), -(-w // 2)), a.dtype)
    for i in range(out.shape[-2]):
        for j in range(out.shape[-1]):
            win = a[..., 2 * i : 2 * i + 2, 2 * j : 2 * j + 2].reshape(*a.shape[:-2], -1)
            for lead in np.ndindex(*a.shape[:-2]):
                v = win[lead]
                if method == "mean":
                    m = v.astype(np.float64).mean()
                    out[(*lead, i, j)] = np.rint(m) if np.issubdtype(a.dtype, np.integer) else m
                else:
                    values, counts = np.unique(v, return_counts=True)
                    out[(*lead, i, j)] = values[np.argmax(counts)]  # unique is sorted: ties → smaller
    return out


@settings(max_examples=40, deadline=None)
@given(
    a=arrays(np.uint8, st.tuples(st.integers(1, 2), st.integers(1, 9), st.integers(1, 9)), elements=st.integers(0, 3)),
    method=st.sampled_from(["mean", "mode"]),
)
def test_downsample_matches_windowwise_reference(a: np.ndarray, method: str) -> None:
    np.testing.assert_array_equal(oz.downsample(a, method), _reference_downsample(a, method))


def test_mean_of_float_probabilities(probs: np.ndarray) -> None:
    got = oz.downsample(probs[:, :, :9, :7], "mean")
    np.testing.assert_allclose(got, _reference_downsample(probs[:, :, :9, :7], "mean"), rtol=1e-6)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got.sum(0), 1.0, rtol=1e-5)  # means of probabilities stay probabilities


@pytest.mark.parametrize("method", ["mean", "mode", "stride"])
def test_pyramid_blockwise_equals_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str) -> None:
    monkeypatch.setattr(oz, "_BLOCK_BYTES", 4096)  # many blocks per level
    a = np.random.default_rng(3).integers(0, 5, (2, 3, 75, 66), dtype=np.uint8)
    root = zarr.open_group(str(tmp_path / "b.zarr"), mode="w", zarr_format=2)
    root.create_array("0", data=a, chunks=(1, 2, 8, 8))
    assert oz.build_pyramid(root, method=method, min_size=6) == 4  # y 75→38→19→10, x 66→33→17→9 (next: 5 < 6)
    ref = a
    for level in range(1, 4):
        ref = oz.downsample(ref, method)
        np.testing.assert_array_equal(root[str(level)][:], ref)
        assert root[str(level)].chunks == (1, 2, 8, 8)


def test_data_info_lists_levels(tmp_path: Path, probs: np.ndarray, capsys: pytest.CaptureFixture) -> None:
    _write_prediction(tmp_path / "p.zarr", probs)
    main(["data", "info", f"{tmp_path / 'p.zarr'}:1"])
    out = capsys.readouterr().out
    rows = {line.split(":", 1)[0]: line.split(":", 1)[1].strip() for line in out.splitlines()}
    assert rows["level 1"] == "1*: (2, 3, 35, 23) (czyx), 30 x 8 x 8 nm"
    assert rows["level 2"].startswith("2: (2, 3, 18, 12)")
    assert rows["channels"] == "background, membrane"
    assert rows["voxel size"] == "30 x 8 x 8 nm (z, y, x)"


# --- untrusted NGFF metadata: one validated parser, one line naming the file and the field ---


def _ngff_image(path: Path, v05: bool = False, mutate: Any = None) -> Path:
    g = zarr.open_group(str(path), mode="w", zarr_format=2)
    g.create_array("0", data=np.random.default_rng(0).random((2, 4, 64, 64)).astype(np.float32), chunks=(1, 2, 64, 64))
    n = oz.build_pyramid(g, method="mean", min_size=32)
    oz.write_image_metadata(g, axes="czyx", voxel_size=(30, 4, 4), n_levels=n, channel_names=["a", "b"])
    attrs = json.loads((path / ".zattrs").read_text())
    if mutate is not None:
        mutate(attrs["multiscales"][0])
    if v05:
        (path / ".zattrs").unlink()
        (path / ".zgroup").unlink()
        (path / "zarr.json").write_text(
            json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {"ome": attrs}})
        )
    else:
        (path / ".zattrs").write_text(json.dumps(attrs))
    return path


@pytest.mark.parametrize("v05", [False, True])
@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda ms: ms.__setitem__("datasets", "0"), "multiscales.0.datasets"),
        (lambda ms: ms["axes"][1].pop("name"), "multiscales.0.axes.1.name"),
        (lambda ms: ms.__setitem__("axes", [0, 1, 2, 3]), "multiscales.0.axes.0"),
        (
            lambda ms: ms["datasets"][1]["coordinateTransformations"][0].__setitem__("scale", "1,1,2,2"),
            "datasets.1.coordinateTransformations.0.scale",
        ),
        (lambda ms: ms["datasets"][1]["coordinateTransformations"][0].__setitem__("scale", [1, 2, 2]), "multiscales.0"),
        (
            lambda ms: ms["datasets"][0]["coordinateTransformations"][0].__setitem__("scale", [1, 1, 0, 4]),
            "positive finite",
        ),
        (lambda ms: ms["datasets"][0].__setitem__("path", "../../elsewhere"), "multiscales.0.datasets.0.path"),
        (lambda ms: ms["datasets"][0].__setitem__("path", "/etc"), "multiscales.0.datasets.0.path"),
        (
            lambda ms: ms.__setitem__("axes", [{"name": "z"}, {"name": "c"}, {"name": "y"}, {"name": "x"}]),
            "multiscales.0",
        ),
    ],
)
def test_bad_ngff_metadata_is_one_line_naming_file_and_field(tmp_path, v05, mutate, field):
    p = _ngff_image(tmp_path / "img.zarr", v05, mutate)
    for read in (open_volume, oz.levels, lambda q: oz.open_ome_zarr(q, 1)):
        with pytest.raises(InputError) as err:
            read(p)
        text = str(err.value)
        assert ("zarr.json" if v05 else ".zattrs") in text and "field '" in text and field in text and "\n" not in text


def test_levels_with_inconsistent_shapes_are_refused(tmp_path):
    p = _ngff_image(tmp_path / "img.zarr")
    assert [lv["shape"][-1] for lv in oz.levels(p)] == [64, 32]
    zarr.open_group(str(p), mode="a").create_array("1", data=np.zeros((2, 4, 50, 32), np.float32), overwrite=True)
    with pytest.raises(InputError, match="level '1' has shape .* inconsistent"):
        open_volume(p)
    zarr.open_group(str(p), mode="a").create_array("1", data=np.zeros((3, 4, 32, 32), np.float32), overwrite=True)
    with pytest.raises(InputError, match="larger than the level before"):
        oz.levels(p)


def test_valid_v05_metadata_reads_like_v04(tmp_path):
    a, b = _ngff_image(tmp_path / "a.zarr"), _ngff_image(tmp_path / "b.zarr", v05=True)
    va, vb = open_volume(a), open_volume(b)
    assert va.shape == vb.shape == (4, 64, 64, 2) and va.voxel_size == vb.voxel_size == (30.0, 4.0, 4.0)
    np.testing.assert_array_equal(va[1], vb[1])


@pytest.mark.parametrize("v05", [False, True])
def test_a_pyramid_places_its_levels_by_composing_their_transformations(tmp_path, v05):
    """Scale and translation of a level: its own transformations, then the multiscale-wide ones, in order; the
    voxel size follows the same scale. v0.4 and v0.5 read alike."""
    plain = oz.open_pyramid(_ngff_image(tmp_path / "plain.zarr", v05))
    assert plain.axes == ["c", "z", "y", "x"] and plain.paths == ["0", "1"] and plain.channel_labels == ["a", "b"]
    assert plain.transform(0) == ([1.0, 30.0, 4.0, 4.0], [0.0, 0.0, 0.0, 0.0])
    assert plain.transform(1) == ([1.0, 30.0, 8.0, 8.0], [0.0, 0.0, 2.0, 2.0])  # mean level: half-pixel shift

    def wide(ms: dict[str, Any]) -> None:
        ms["coordinateTransformations"] = [
            {"type": "scale", "scale": [1, 2, 2, 2]},
            {"type": "translation", "translation": [0, 10, 20, 30]},
        ]

    image = oz.open_pyramid(_ngff_image(tmp_path / "wide.zarr", v05, wide))
    assert image.transform(1) == ([1.0, 60.0, 16.0, 16.0], [0.0, 10.0, 24.0, 34.0])
    assert image.voxel_size(1) == (60.0, 16.0, 16.0) == open_volume(tmp_path / "wide.zarr", key="1").voxel_size
    assert oz.open_pyramid(tmp_path / "wide.zarr" / "0") is None  # an array, not an image


def test_label_images_are_listed_and_kept_inside_the_image(tmp_path, probs):
    _write_prediction(tmp_path / "p.zarr", probs)
    labels = oz.label_images(tmp_path / "p.zarr")
    assert labels == {"labels": tmp_path / "p.zarr" / "labels" / "labels"}
    assert oz.open_pyramid(labels["labels"]).axes == ["z", "y", "x"]
    assert oz.label_images(_ngff_image(tmp_path / "img.zarr")) == {}
    attrs_file = tmp_path / "p.zarr" / "labels" / ".zattrs"
    attrs_file.write_text(json.dumps({"labels": ["../../elsewhere"]}))
    with pytest.raises(InputError, match=r"labels.*field 'labels\.0'.*leaves"):
        oz.label_images(tmp_path / "p.zarr")
