"""napari widgets and sample data (``slicewise/napari/widgets.py``, ``sample_data.py``) in a real
offscreen viewer: prediction and the attribution audit run in thread workers and add named,
scaled layers equal to the Python API's results."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari", reason="the napari extra is not installed: pip install 'slicewise[napari]'")
pytest.importorskip("pytestqt", reason="pytest-qt is not installed: pip install 'slicewise[napari]'")
pytestmark = pytest.mark.filterwarnings("ignore:System theme detection requires a Qt6 backend")

from slicewise.data.synthetic import make_phantom  # noqa: E402 - after the importorskip guards


def _dock(viewer, name: str):
    _, widget = viewer.window.add_plugin_dock_widget("slicewise", name)
    return widget


def _wait(qtbot, worker, done) -> None:
    """Let the thread worker run (the Qt event loop delivers its results) until ``done()``."""
    assert worker is not None
    qtbot.waitUntil(done, timeout=60_000)


def test_predict_widget_adds_probabilities_and_labels(make_napari_viewer, qtbot, model_file) -> None:
    from slicewise import load_model, predict

    vol = make_phantom(shape=(4, 64, 64), seed=1).raw
    viewer = make_napari_viewer()
    viewer.add_image(vol, name="em", scale=(50.0, 4.0, 4.0), translate=(100.0, 0.0, 8.0))
    viewer.add_image(np.zeros((8, 8), np.uint8), name="other")
    widget = _dock(viewer, "Predict")
    widget.layer_box.setCurrentText("em")
    widget.model_edit.setText(str(model_file))
    widget.tile.setValue(64)
    _wait(qtbot, widget.run(), lambda: "em labels" in viewer.layers)
    expected = predict(load_model(model_file), vol, tile=64, overlap=0.25, progress=False)
    for i, name in enumerate(["cytoplasm", "membrane", "boundary"]):
        layer = viewer.layers[f"em {name}"]
        np.testing.assert_allclose(layer.scale, [50.0, 4.0, 4.0])
        np.testing.assert_allclose(layer.translate, [100.0, 0.0, 8.0])
        np.testing.assert_allclose(layer.data, expected[i], atol=1e-6)
        assert layer.data.dtype == np.float32 and layer.data.shape == vol.shape
        assert 0.0 <= layer.data.min() and layer.data.max() <= 1.0 and tuple(layer.contrast_limits) == (0.0, 1.0)
    labels = viewer.layers["em labels"]
    assert type(labels).__name__ == "Labels" and labels.data.dtype == np.uint8 and set(np.unique(labels.data)) <= {0, 1}
    np.testing.assert_array_equal(labels.data, expected[:2].argmax(0))
    np.testing.assert_allclose(labels.scale, [50.0, 4.0, 4.0])
    assert widget.progress.value() == widget.progress.maximum()


def test_cli_api_and_widget_predict_a_package_alike(make_napari_viewer, qtbot, model_file, tmp_path, cli) -> None:
    """One bioimage.io package (dz 2, replicate borders): ``slicewise predict``, ``slicewise.predict`` /
    ``predict_to`` and the Predict widget all use its defaults and give the same probabilities."""
    pytest.importorskip(
        "bioimageio.spec", reason="the bioimageio extra is not installed: pip install 'slicewise[bioimageio]'"
    )
    import tifffile

    from slicewise import load_model, predict, predict_to, read_prediction
    from slicewise.export import bioimageio

    pkg = bioimageio(model_file, tmp_path / "pkg.zip", dz=2, border="replicate", test_size=64, torchscript=False)
    vol = make_phantom(shape=(5, 64, 64), seed=4).raw
    tifffile.imwrite(tmp_path / "raw.tif", vol)
    api = predict(load_model(pkg), vol, tile=64, overlap=0.25, progress=False)
    plain = predict(load_model(model_file), vol, tile=64, overlap=0.25, progress=False)
    assert np.abs(api - plain).max() > 1e-4  # the package's dz and border change the result
    predict_to(pkg, tmp_path / "raw.tif", tmp_path / "api.tif", tile=64, progress=False)
    code, _, err = cli(["predict", pkg, tmp_path / "raw.tif", tmp_path / "cli.tif", "--tile", "64"])
    assert code == 0, err
    viewer = make_napari_viewer()
    viewer.add_image(vol, name="em")
    widget = _dock(viewer, "Predict")
    widget.layer_box.setCurrentText("em")
    widget.model_edit.setText(str(pkg))
    widget.tile.setValue(64)
    _wait(qtbot, widget.run(), lambda: "em labels" in viewer.layers)
    shown = np.stack([viewer.layers[f"em {name}"].data for name in ("cytoplasm", "membrane", "boundary")])
    np.testing.assert_array_equal(shown, api)
    for out in ("api.tif", "cli.tif"):
        with read_prediction(tmp_path / out) as pred:
            np.testing.assert_array_equal(np.asarray(pred.probabilities[...]), api)


def test_predict_widget_user_errors_go_to_the_status_line(make_napari_viewer, qtbot, model_file, tmp_path) -> None:
    viewer = make_napari_viewer()
    viewer.add_image(make_phantom(shape=(1, 64, 96), seed=2).raw[0], name="slice", scale=(2.0, 3.0))
    widget = _dock(viewer, "Predict")
    widget.model_edit.setText(str(tmp_path / "missing.pt"))
    assert (
        widget.run() is None
        and widget.status.text().startswith("error: model file")
        and "does not exist" in widget.status.text()
    )
    widget.model_edit.setText(str(model_file.parent))  # a run folder: named as a folder, with the model file inside it
    assert widget.run() is None and "is a folder, not a file" in widget.status.text()
    widget.model_edit.setText(str(model_file))  # a k=3 model cannot predict a single 2-D slice
    _wait(qtbot, widget.run(), lambda: "k=3" in widget.status.text())
    assert widget.status.text().startswith("error: k=3") and widget.run_button.isEnabled()
    assert [layer.name for layer in viewer.layers] == ["slice"]


def test_audit_widget_shows_shares_ma_and_maps(make_napari_viewer, qtbot, model_file) -> None:
    from slicewise import load_model
    from slicewise.diagnostics.attribution import attribution_report

    vol = make_phantom(shape=(5, 64, 64), seed=3).raw
    viewer = make_napari_viewer()
    viewer.add_image(vol, name="em", scale=(50.0, 4.0, 4.0))
    widget = _dock(viewer, "Attribution audit")
    widget.model_edit.setText(str(model_file))
    widget.n_tiles.setValue(3)
    widget.tile.setValue(64)
    _wait(qtbot, widget.run(), lambda: widget.report is not None)
    ref = attribution_report(
        load_model(model_file), vol, n_tiles=3, tile=64, method="saliency", n_resamples=500, device="cpu"
    )
    got = [s["value"] for s in widget.report["shares"]]
    np.testing.assert_allclose(got, [s["value"] for s in ref["shares"]], rtol=1e-5)
    assert "MA = " in widget.status.text()
    ax = widget.figure.axes[0]
    np.testing.assert_allclose([p.get_height() for p in ax.patches], got, rtol=1e-6)
    assert "MA" in ax.get_title()
    maps = [viewer.layers[f"em attribution z{o:+d}"] for o in (-1, 0, 1)]
    assert all(m.data.shape == vol.shape and m.data.dtype == np.float32 and m.data.min() >= 0.0 for m in maps)
    np.testing.assert_allclose(maps[0].scale, [50.0, 4.0, 4.0])
    # every map sits on the slice of its tile's centre: the tiles' z values, nothing elsewhere
    from slicewise.diagnostics.attribution import sample_tiles

    zs = {z for z, _, _ in sample_tiles(vol.shape, 3, 64, 3, 1, seed=0)}
    total = sum(m.data for m in maps)
    assert {int(z) for z in np.nonzero(total.reshape(total.shape[0], -1).any(1))[0]} == zs


def test_attribution_volumes_place_maps_at_their_tiles() -> None:
    from slicewise.napari.widgets import attribution_volumes

    maps = np.arange(2 * 3 * 4 * 4, dtype=np.float32).reshape(2, 3, 4, 4)
    out = attribution_volumes(maps, [(1, 0, 2), (3, 4, 0)], (5, 8, 8))
    assert out.shape == (3, 5, 8, 8)
    np.testing.assert_array_equal(out[:, 1, 0:4, 2:6], maps[0])
    np.testing.assert_array_equal(out[:, 3, 4:8, 0:4], maps[1])
    assert out.sum() == maps.sum()


def test_sample_data_is_the_phantom(make_napari_viewer) -> None:
    viewer = make_napari_viewer()
    viewer.open_sample("slicewise", "phantom")
    raw, classes = viewer.layers["phantom"], viewer.layers["phantom classes"]
    ph = make_phantom(shape=raw.data.shape, seed=0)
    np.testing.assert_array_equal(raw.data, ph.raw)
    np.testing.assert_array_equal(classes.data, ph.semantic)
    np.testing.assert_allclose(raw.scale, ph.voxel_size)


def test_manifest_contributions() -> None:
    from pathlib import Path

    import npe2

    manifest = npe2.PluginManifest.from_file(
        Path(__file__).resolve().parents[2] / "slicewise" / "napari" / "napari.yaml"
    )
    for command in manifest.contributions.commands:
        assert command.python_name  # every command points at a callable
        module, _, attr = command.python_name.partition(":")
        assert callable(getattr(__import__(module, fromlist=[attr]), attr))
    assert {w.display_name for w in manifest.contributions.widgets} == {"Predict", "Attribution audit"}


def test_fresh_napari_session_runs_both_widgets_without_a_crash(gl_display, model_file) -> None:
    """A new user's session in a fresh process (tests/napari/fresh_session.py): the viewer's OpenGL context
    first (Mesa maps libLLVM), nothing imported torch yet, then Run in Predict and in Attribution audit, with
    triton installed as CI installs it. Before the plugin's import guard this died with SIGSEGV in
    ``import triton``; now both widgets add their layers."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).with_name("fresh_session.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}
    out = subprocess.run(
        [sys.executable, str(script), str(model_file)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, f"exit {out.returncode}: {out.stderr[-3000:]}"
    run = json.loads(out.stdout.strip().splitlines()[-1])
    assert run["torch_before"] is False  # the session really started without torch
    if run["llvm"]:  # Mesa's libLLVM was mapped when torch came: triton must have been kept out
        assert run["triton"] in ("blocked", "absent")
    assert run["predict_status"].startswith("added 3 probability layer(s)"), run["predict_status"]
    assert run["audit_status"].startswith("MA = "), run["audit_status"]
    layers = run["layers"]
    assert {"phantom", "phantom classes", "em"} <= set(layers)
    for name in ("cytoplasm", "membrane", "boundary"):
        layer = layers[f"em {name}"]
        assert layer["type"] == "Image" and layer["shape"] == [5, 64, 64] and layer["dtype"] == "float32"
        assert 0.0 <= layer["min"] <= layer["max"] <= 1.0 and layer["scale"] == [50.0, 4.0, 4.0]
    assert layers["em cytoplasm"]["max"] > layers["em cytoplasm"]["min"]  # a real prediction, not a constant
    labels = layers["em labels"]
    assert labels["type"] == "Labels" and labels["shape"] == [5, 64, 64] and labels["dtype"] == "uint8"
    assert 0 <= labels["min"] <= labels["max"] <= 1
    maps = [layers[f"em attribution z{o:+d}"] for o in (-1, 0, 1)]
    assert all(
        m["type"] == "Image" and m["shape"] == [5, 64, 64] and m["dtype"] == "float32" and m["min"] >= 0.0 for m in maps
    )
    assert max(m["max"] for m in maps) > 0.0
