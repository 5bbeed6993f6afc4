"""Regenerate docs/img/napari-widgets.png headless: the phantom sample, the Predict and Attribution
audit widgets run with a model file, screenshot of the whole window.

    QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1600x1000x24" python docs/img/napari_screenshot.py MODEL.pt [OUT.png]

(headless: the window lives on Xvfb's virtual screen, OpenGL through Mesa.)
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
warnings.filterwarnings("ignore", message=".*PyQt5 backend is deprecated.*")


def main(model: str, out: str) -> None:
    import napari
    import npe2
    from qtpy.QtWidgets import QApplication

    plugin_yaml = Path(__file__).resolve().parents[2] / "slicewise" / "napari" / "napari.yaml"
    manifest = npe2.PluginManifest.from_file(plugin_yaml)
    pm = npe2.PluginManager.instance()
    if manifest.name in pm._manifests:
        pm.unregister(manifest.name)
    pm.register(manifest)

    from napari.settings import get_settings

    get_settings().application.gui_notification_level = "error"  # no toast over the canvas
    viewer = napari.Viewer(show=True, title="slicewise in napari")
    viewer.window._qt_window.resize(1500, 950)
    viewer.open_sample("slicewise", "phantom")
    _, predict = viewer.window.add_plugin_dock_widget("slicewise", "Predict")
    _, audit = viewer.window.add_plugin_dock_widget("slicewise", "Attribution audit", tabify=False)
    for w in (predict, audit):
        w.layer_box.setCurrentText("phantom")
        w.model_edit.setText(model)
    predict.tile.setValue(192)
    audit.n_tiles.setValue(16)

    def wait(done) -> None:
        t0 = time.time()
        while not done():
            QApplication.processEvents()
            time.sleep(0.05)
            if time.time() - t0 > 600:
                raise TimeoutError("widget did not finish")

    predict.run()
    wait(lambda: "phantom labels" in viewer.layers)
    audit.run()
    wait(lambda: audit.report is not None)
    for layer in viewer.layers:
        layer.visible = layer.name in ("phantom", "phantom labels")
    viewer.layers.selection.active = viewer.layers["phantom labels"]
    viewer.dims.set_point(0, 8 * viewer.layers["phantom"].scale[0])
    viewer.reset_view()
    for _ in range(20):
        QApplication.processEvents()
        time.sleep(0.05)
    viewer.screenshot(out, canvas_only=False)
    print(out)
    viewer.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else str(Path(__file__).with_name("napari-widgets.png")))
