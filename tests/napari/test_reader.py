"""napari reader (``slicewise/napari/reader.py``): OME-Zarr predictions and report folders open as
named, scaled layers through the plugin's manifest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari", reason="the napari extra is not installed: pip install 'slicewise[napari]'")
pytest.importorskip("pytestqt", reason="pytest-qt is not installed: pip install 'slicewise[napari]'")
pytestmark = pytest.mark.filterwarnings("ignore:System theme detection requires a Qt6 backend")

from slicewise.napari.reader import channel_names, napari_get_reader  # noqa: E402 - after the importorskip guards

AXES = [{"name": "c", "type": "channel"}] + [{"name": n, "type": "space", "unit": "nanometer"} for n in "zyx"]


def write_prediction(
    path: Path,
    probs: np.ndarray,
    names: list[str],
    *,
    voxel=(40.0, 8.0, 8.0),
    offset=(2, 4, 6),
    quantize: bool = False,
    omero_only: bool = False,
) -> Path:
    """An OME-Zarr prediction in the documented layout, written with ome_zarr's writer (2 levels + labels)."""
    import zarr
    from ome_zarr.format import FormatV04
    from ome_zarr.writer import write_multiscale, write_multiscale_labels

    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    trans = [o * v for o, v in zip(offset, voxel)]
    ct = [
        [
            {"type": "scale", "scale": [1.0, voxel[0], voxel[1] * 2**i, voxel[2] * 2**i]},
            {"type": "translation", "translation": [0.0, *trans]},
        ]
        for i in range(2)
    ]
    data = np.round(probs * 255).astype(np.uint8) if quantize else probs
    write_multiscale([data, data[:, :, ::2, ::2]], root, axes=AXES, fmt=FormatV04(), coordinate_transformations=ct)
    labels = probs.argmax(0).astype(np.uint8)
    write_multiscale_labels(
        [labels, labels[:, ::2, ::2]],
        root,
        name="labels",
        axes=AXES[1:],
        fmt=FormatV04(),
        coordinate_transformations=[
            [{"type": "scale", "scale": c[0]["scale"][1:]}, {"type": "translation", "translation": trans}] for c in ct
        ],
    )
    attrs = {"omero": {"channels": [{"label": n} for n in names]}}
    if not omero_only:
        attrs["slicewise"] = {"channels": names, **({"quantisation": {"scale": 1 / 255}} if quantize else {})}
    root.attrs.update(attrs)
    return path


@pytest.fixture
def probs() -> np.ndarray:
    rng = np.random.default_rng(0)
    p = rng.random((3, 4, 32, 48)).astype(np.float32)
    return p / p.sum(0, keepdims=True)


@pytest.mark.parametrize("quantize", [False, True])
def test_prediction_opens_with_names_scale_and_labels(make_napari_viewer, tmp_path, probs, quantize) -> None:
    path = write_prediction(tmp_path / "pred.zarr", probs, ["cytoplasm", "membrane", "boundary"], quantize=quantize)
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="slicewise")
    names = [layer.name for layer in viewer.layers]
    assert names == ["pred cytoplasm", "pred membrane", "pred boundary", "pred labels"]
    for i, layer in enumerate(list(viewer.layers)[:3]):
        assert layer.multiscale and len(layer.data) == 2
        np.testing.assert_allclose(layer.scale, [40.0, 8.0, 8.0])
        np.testing.assert_allclose(layer.translate, [80.0, 32.0, 48.0])
        np.testing.assert_allclose(np.asarray(layer.data[0]), probs[i], atol=0.5 / 255 + 1e-6 if quantize else 0)
    lab = viewer.layers["pred labels"]
    assert lab.__class__.__name__ == "Labels"
    np.testing.assert_allclose(lab.scale, [40.0, 8.0, 8.0])
    np.testing.assert_array_equal(np.asarray(lab.data[0]), probs.argmax(0))


def test_labels_only_prediction_opens_as_labels(make_napari_viewer, tmp_path, probs) -> None:
    import zarr
    from ome_zarr.format import FormatV04
    from ome_zarr.writer import write_multiscale, write_multiscale_labels

    labels = probs.argmax(0).astype(np.uint8)
    root = zarr.open_group(str(tmp_path / "lab.zarr"), mode="w", zarr_format=2)
    ct = [[{"type": "scale", "scale": [40.0, 8.0, 8.0]}]]
    write_multiscale([labels], root, axes=AXES[1:], fmt=FormatV04(), coordinate_transformations=ct)
    write_multiscale_labels(
        [labels], root, name="labels", axes=AXES[1:], fmt=FormatV04(), coordinate_transformations=ct
    )
    viewer = make_napari_viewer()
    viewer.open(str(tmp_path / "lab.zarr"), plugin="slicewise")
    assert [type(layer).__name__ for layer in viewer.layers] == ["Labels"]
    np.testing.assert_array_equal(np.asarray(viewer.layers[0].data), labels)
    np.testing.assert_allclose(viewer.layers[0].scale, [40.0, 8.0, 8.0])


def test_channel_names_fall_back_to_omero_then_index(tmp_path, probs) -> None:
    assert channel_names({"omero": {"channels": [{"label": "a"}, {"label": "b"}]}}, 2) == ["a", "b"]
    assert channel_names({"slicewise": {"channels": ["x", "y"]}, "omero": {"channels": []}}, 2) == ["x", "y"]
    assert channel_names({"omero": {"channels": [{"label": "a"}]}}, 2) == ["class0", "class1"]
    path = write_prediction(tmp_path / "o.zarr", probs, ["bg", "mem", "mito"], omero_only=True)
    layers = napari_get_reader(str(path))(str(path))
    assert layers[0][1]["name"] == ["o bg", "o mem", "o mito"]


def test_report_folders_open_their_figures(make_napari_viewer, tmp_path) -> None:
    from PIL import Image

    audit = tmp_path / "audit"
    audit.mkdir()
    (audit / "index.html").write_text("<html></html>")
    (audit / "report.json").write_text("{}")
    Image.fromarray(np.full((20, 30, 3), 200, np.uint8)).save(audit / "slice_shares.png")
    study = tmp_path / "study"
    (study / "figures").mkdir(parents=True)
    (study / "report.html").write_text("<html></html>")
    Image.fromarray(np.zeros((10, 10, 4), np.uint8)).save(study / "figures" / "comparison-00-dice.png")
    viewer = make_napari_viewer()
    viewer.open(str(audit), plugin="slicewise")
    viewer.open(str(study), plugin="slicewise")
    assert [layer.name for layer in viewer.layers] == ["slice_shares", "comparison-00-dice"]
    assert all(layer.rgb for layer in viewer.layers)
    assert viewer.layers["slice_shares"].data.shape == (20, 30, 3)


def test_other_paths_are_not_claimed(tmp_path) -> None:
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "x.png").write_bytes(b"")
    (tmp_path / "notome.zarr").mkdir()
    assert napari_get_reader(str(tmp_path / "plain")) is None
    assert napari_get_reader(str(tmp_path / "notome.zarr")) is None
    assert napari_get_reader(str(tmp_path / "missing.tif")) is None
    assert napari_get_reader([str(tmp_path / "a"), str(tmp_path / "b")]) is None
