"""A new user's napari session, in a fresh process (run by ``test_fresh_session.py``, not collected by pytest).

The viewer's OpenGL context is created first (Mesa maps libLLVM), then the plugin is loaded through npe2
the way napari loads it and Run is pressed in the Predict and Attribution audit widgets: nothing has
imported torch before, as when a user opens napari. Prints one JSON line: the layers that appeared
(name, shape, dtype, min, max), each widget's status line, whether libLLVM was mapped and what became
of triton.

    python tests/napari/fresh_session.py MODEL.pt
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("NAPARI_ASYNC", "0")


def main(model: str) -> None:
    import napari
    import npe2
    import numpy as np
    from qtpy.QtWidgets import QApplication

    manifest = npe2.PluginManifest.from_file(
        Path(__file__).resolve().parents[2] / "slicewise" / "napari" / "napari.yaml"
    )
    pm = npe2.PluginManager.instance()
    if manifest.name in pm._manifests:
        pm.unregister(manifest.name)
    pm.register(manifest)

    viewer = napari.Viewer(show=False)
    viewer.open_sample("slicewise", "phantom")  # the sample data contribution (no torch either)
    phantom = np.asarray(viewer.layers["phantom"].data)
    viewer.add_image(phantom[:5, :64, :64], name="em", scale=(50.0, 4.0, 4.0))
    llvm = "libLLVM" in Path("/proc/self/maps").read_text() if Path("/proc/self/maps").exists() else False
    torch_before = "torch" in sys.modules

    def wait(done) -> None:
        t0 = time.time()
        while not done() and time.time() - t0 < 240:
            QApplication.processEvents()
            time.sleep(0.02)

    _, predict = viewer.window.add_plugin_dock_widget("slicewise", "Predict")
    predict.layer_box.setCurrentText("em")
    predict.model_edit.setText(model)
    predict.tile.setValue(64)
    predict.run()
    wait(lambda: "em labels" in viewer.layers or predict.status.text().startswith("error"))

    _, audit = viewer.window.add_plugin_dock_widget("slicewise", "Attribution audit")
    audit.layer_box.setCurrentText("em")
    audit.model_edit.setText(model)
    audit.n_tiles.setValue(3)
    audit.tile.setValue(64)
    audit.run()
    wait(lambda: audit.report is not None or audit.status.text().startswith("error"))

    layers = {}
    for layer in viewer.layers:
        data = np.asarray(layer.data)
        layers[layer.name] = {
            "type": type(layer).__name__,
            "shape": list(data.shape),
            "dtype": str(data.dtype),
            "min": float(data.min()),
            "max": float(data.max()),
            "scale": [float(s) for s in layer.scale],
        }
    triton = sys.modules.get("triton", "absent")
    print(
        json.dumps(
            {
                "llvm": llvm,
                "torch_before": torch_before,
                "triton": "blocked" if triton is None else "absent" if triton == "absent" else "loaded",
                "predict_status": predict.status.text(),
                "audit_status": audit.status.text(),
                "layers": layers,
            }
        )
    )
    viewer.close()


if __name__ == "__main__":
    main(sys.argv[1])
