"""napari plugin tests: headless viewer (``QT_QPA_PLATFORM=offscreen``), skipped without the extra.

napari draws with OpenGL (vispy); Qt's offscreen platform gets its GL context from an X server,
so without ``DISPLAY`` an ``Xvfb`` server is started for the session when it is installed
(Debian/Ubuntu: ``apt-get install xvfb``); with neither, these tests skip with that reason.
The plugin's manifest is registered with npe2 from the source tree, so the tests exercise
``napari.yaml`` itself even when the installed distribution's entry point is another checkout's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ["QT_QPA_PLATFORM"] = "offscreen"
os.environ.setdefault("NAPARI_ASYNC", "0")

EXTRA = "the napari extra is not installed: pip install 'slicewise[napari]'"
MANIFEST = Path(__file__).resolve().parents[2] / "slicewise" / "napari" / "napari.yaml"


@pytest.fixture(scope="session", autouse=True)
def gl_display() -> Iterator[None]:
    """An X display for OpenGL: the existing ``DISPLAY``, else a private Xvfb for the session, else skip.

    Nothing is imported ahead of the viewers: triton next to Mesa's libLLVM is the plugin's business
    (:mod:`slicewise.napari.triton_guard`), and ``test_fresh_napari_session_runs_both_widgets_without_a_crash``
    runs a user's order (GL context first, torch at Run) in a fresh process."""
    if os.environ.get("DISPLAY"):
        yield
        return
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.skip("napari needs OpenGL through an X server: set DISPLAY or install Xvfb (apt-get install xvfb)")
    for number in range(90, 110):
        if not Path(f"/tmp/.X{number}-lock").exists():
            break
    # Xvfb must outlive Qt's X connection (closed only at interpreter exit): a watchdog stops it
    # once this pytest process has ended.
    script = (
        f"{xvfb} :{number} -screen 0 1280x1024x24 -nolisten tcp >/dev/null 2>&1 & x=$!; "
        f"while kill -0 {os.getpid()} 2>/dev/null; do sleep 1; done; kill $x"
    )
    subprocess.Popen(["sh", "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        if Path(f"/tmp/.X11-unix/X{number}").exists():
            break
        time.sleep(0.1)
    os.environ["DISPLAY"] = f":{number}"
    yield


@pytest.fixture(scope="session", autouse=True)
def slicewise_plugin(gl_display: None) -> str:
    """Register this checkout's ``napari.yaml`` with npe2 (replacing an installed copy)."""
    npe2 = pytest.importorskip("npe2", reason=EXTRA)

    pm = npe2.PluginManager.instance()
    manifest = npe2.PluginManifest.from_file(MANIFEST)
    if manifest.name in pm._manifests:
        pm.unregister(manifest.name)
    pm.register(manifest)
    return manifest.name


@pytest.fixture(scope="session")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny saved slicewise model (timm test_resnet U-Net, k=3, 2 named classes + boundary head)."""
    import torch

    from slicewise.models import build_model, save_model

    torch.manual_seed(0)
    model = build_model(
        encoder="test_resnet",
        weights="random",
        decoder_channels=(16, 16, 8, 8, 8),
        channel_init="uniform",
        classes=2,
        class_names=["cytoplasm", "membrane"],
        extra_heads=["boundary"],
    ).eval()
    with torch.no_grad():
        model.decoder.head.weight.mul_(20.0)
    return save_model(model, tmp_path_factory.mktemp("napari-model") / "best.pt")
