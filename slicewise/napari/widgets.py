"""napari dock widgets: run slicewise prediction and the attribution audit on an image layer.

Both take a model file (``slicewise train``'s ``best.pt`` or an exported bioimage.io ``.zip``),
run in a napari ``thread_worker`` (the viewer stays responsive) and add their results with the
input layer's scale and translation. The image layer is read as Z×Y×X (a 2-D layer is one slice;
a multiscale layer uses its full-resolution level).

- :class:`PredictWidget`: ``slicewise.predict(model, volume, tile=..., overlap=...)`` → one image
  layer per output channel (named ``<layer> <class name>``, probabilities in [0, 1]) and a labels
  layer (argmax over the segmentation classes).
- :class:`AuditWidget`: :func:`slicewise.diagnostics.attribution.attribution_report` (saliency,
  seeded tiles) → slice-share bars with 95% CIs in a matplotlib canvas, the mirror asymmetry MA,
  and the attribution maps of the first tiles as image layers (one per slice offset).
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

import numpy as np
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

import slicewise
from slicewise.errors import InputError, SlicewiseError
from slicewise.utils.inputs import check_model_file

log = logging.getLogger(__name__)
SEED = 0


def layer_volume(layer: Any) -> tuple[np.ndarray, tuple[float, float, float], tuple[float, float, float], bool]:
    """(Z×Y×X(×C) numpy volume, scale (z, y, x), translate (z, y, x), was 2-D) of an image layer."""
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    vol = np.asarray(data)
    rgb = bool(getattr(layer, "rgb", False))
    spatial = vol.ndim - (1 if rgb else 0)
    scale = [float(s) for s in layer.scale][-spatial:]
    translate = [float(t) for t in layer.translate][-spatial:]
    flat = spatial == 2
    if flat:
        vol, scale, translate = vol[None], [1.0, *scale], [0.0, *translate]
    if spatial > 3 or spatial < 2:
        raise InputError(f"layer {layer.name!r} has {spatial} spatial dimensions: select a 2-D image or a Z×Y×X volume")
    return vol, tuple(scale[-3:]), tuple(translate[-3:]), flat  # type: ignore[return-value]


def _import_torch_stack() -> None:
    """Import torch, timm/torchvision and Captum on the main thread: their first import inside a
    worker thread (torchvision pulls in torch._dynamo and triton) can crash the process. triton itself
    is kept out by :mod:`slicewise.napari.triton_guard`, installed when this package was imported."""
    import captum.attr  # noqa: F401
    import timm  # noqa: F401
    import torch  # noqa: F401


def _user_errors(gen_fn: Any) -> Any:
    """Generator job wrapper: a :class:`SlicewiseError` (bad input, the user's to fix) becomes the return
    value, so it is shown in the widget instead of napari's traceback notification."""

    @functools.wraps(gen_fn)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return (yield from gen_fn(*args, **kwargs))
        except SlicewiseError as err:
            return _Failure(str(err))  # not the exception itself: superqt re-raises returned exceptions

    return wrapped


class _Failure(str):
    """A job's one-line user error (returned, not raised)."""


def attribution_volumes(maps: np.ndarray, origins: list[tuple[int, int, int]], shape: tuple[int, ...]) -> np.ndarray:
    """Per-slice attribution maps ``(tiles, k, t, t)`` placed at their tile origins ``(z, y0, x0)`` in
    ``(k, Z, Y, X)`` float32 volumes (0 elsewhere; where tiles overlap, the larger value)."""
    n, k, t = maps.shape[0], maps.shape[1], maps.shape[-1]
    out = np.zeros((k, *shape[:3]), np.float32)
    for (z, y, x), m in zip(origins[:n], maps):
        region = out[:, z, y : y + t, x : x + t]
        np.maximum(region, m, out=region)
    return out


class _ModelForm(QWidget):
    """Shared form: image layer, model file, a run button, progress bar and status line."""

    title = ""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.worker: Any = None
        self.layer_box = QComboBox()
        self.model_edit = QLineEdit()
        self.model_edit.setPlaceholderText("best.pt or package.zip")
        browse = QPushButton("…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.model_edit)
        row.addWidget(browse)
        self.form = QFormLayout()
        self.form.addRow("image layer", self.layer_box)
        self.form.addRow("model file", row)
        self.run_button = QPushButton(self.title)
        self.run_button.clicked.connect(self.run)
        self.progress = QProgressBar()
        self.progress.setRange(0, 3)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.box = QVBoxLayout(self)
        self.box.addLayout(self.form)
        self.box.addWidget(self.run_button)
        self.box.addWidget(self.progress)
        self.box.addWidget(self.status)
        for event in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            event.connect(self._refresh_layers)
        self._refresh_layers()

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "slicewise model", "", "slicewise models (*.pt *.zip);;all files (*)"
        )
        if path:
            self.model_edit.setText(path)

    def _refresh_layers(self, *_: Any) -> None:
        from napari.layers import Image

        current = self.layer_box.currentText()
        self.layer_box.clear()
        names = [layer.name for layer in self.viewer.layers if isinstance(layer, Image)]
        self.layer_box.addItems(names)
        if current in names:
            self.layer_box.setCurrentText(current)

    def selected_layer(self) -> Any:
        name = self.layer_box.currentText()
        if not name or name not in self.viewer.layers:
            raise InputError("no image layer selected: open an image first")
        return self.viewer.layers[name]

    def model_path(self) -> Path:
        text = self.model_edit.text().strip()
        if not text:
            raise InputError("no model file chosen: choose a best.pt or an exported .zip")
        return check_model_file(text)

    def _step(self, message: str) -> None:
        self.progress.setValue(min(self.progress.maximum(), self.progress.value() + 1))
        self.status.setText(message)

    def _failed(self, err: Exception) -> None:
        self.run_button.setEnabled(True)
        self.progress.setValue(0)
        self.status.setText(
            f"error: {err}" if isinstance(err, SlicewiseError) else f"error: {type(err).__name__}: {err}"
        )

    def _done(self, handler: Any) -> Any:
        """A ``returned`` slot: a job's user error goes to the status line, a result to ``handler``."""

        def slot(result: Any) -> None:
            if isinstance(result, _Failure):
                self._failed(SlicewiseError(result))
            else:
                handler(result)

        return slot

    def _start(self, worker: Any) -> Any:
        self.worker = worker
        worker.yielded.connect(self._step)
        worker.errored.connect(self._failed)
        worker.finished.connect(lambda: self.run_button.setEnabled(True))
        self.run_button.setEnabled(False)
        self.progress.setValue(0)
        worker.start()
        return worker

    def run(self) -> Any:
        """Start the computation in a thread worker (returned); errors go to the status line."""
        try:
            return self._start(self.make_worker())
        except SlicewiseError as err:
            self._failed(err)
            return None

    def make_worker(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError


class PredictWidget(_ModelForm):
    """Predict the selected image layer with a model file; adds probability image layers and a labels layer."""

    title = "Predict"

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(napari_viewer)
        self.tile = QSpinBox()
        self.tile.setRange(16, 4096)
        self.tile.setValue(256)
        self.overlap = QDoubleSpinBox()
        self.overlap.setRange(0.0, 0.9)
        self.overlap.setSingleStep(0.05)
        self.overlap.setValue(0.25)
        self.form.addRow("tile (px)", self.tile)
        self.form.addRow("overlap", self.overlap)

    def make_worker(self) -> Any:
        from napari.qt.threading import thread_worker

        layer = self.selected_layer()
        model_file = self.model_path()
        vol, scale, translate, flat = layer_volume(layer)
        tile, overlap = int(self.tile.value()), float(self.overlap.value())

        _import_torch_stack()

        @thread_worker(connect={"returned": self._done(self._add_result)}, start_thread=False)
        @_user_errors
        def job():
            model = slicewise.load_model(model_file)  # a package's dz, border and class names come with it
            yield f"model {model.config.encoder} loaded; predicting {vol.shape[0]} slice(s)…"
            probs = slicewise.predict(model, vol, tile=tile, overlap=overlap, progress=False)
            yield "prediction done; adding layers"
            seg = model.heads.get("seg", slice(0, model.out_channels))
            labels = (
                probs[seg].argmax(0).astype(np.uint8)
                if probs[seg].shape[0] > 1
                else (probs[seg][0] > 0.5).astype(np.uint8)
            )
            return layer.name, model.config.channel_names, probs, labels, scale, translate, flat

        return job()

    def _add_result(self, result: tuple[Any, ...]) -> None:
        name, names, probs, labels, scale, translate, flat = result
        if flat:
            probs, labels, scale, translate = probs[:, 0], labels[0], scale[1:], translate[1:]
        for i, channel in enumerate(names):  # shown: the first foreground class; a distance head keeps its own range
            unit = float(probs[i].min()) >= 0.0 and float(probs[i].max()) <= 1.0
            self.viewer.add_image(
                probs[i],
                name=f"{name} {channel}",
                scale=scale,
                translate=translate,
                contrast_limits=(0.0, 1.0) if unit else None,
                blending="additive",
                colormap="gray",
                visible=i == min(1, len(names) - 1),
            )
        self.viewer.add_labels(labels, name=f"{name} labels", scale=scale, translate=translate, opacity=0.4)
        self.progress.setValue(self.progress.maximum())
        self.status.setText(f"added {len(names)} probability layer(s) and labels for {name!r}")


class AuditWidget(_ModelForm):
    """Attribution audit of a model on the selected layer: slice-share bars, MA, attribution maps."""

    title = "Audit attribution"

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(napari_viewer)
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.n_tiles = QSpinBox()
        self.n_tiles.setRange(1, 1024)
        self.n_tiles.setValue(16)
        self.tile = QSpinBox()
        self.tile.setRange(16, 1024)
        self.tile.setValue(128)
        self.form.addRow("tiles", self.n_tiles)
        self.form.addRow("tile (px)", self.tile)
        self.figure = Figure(figsize=(3.5, 2.6), tight_layout=True)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(200)
        self.box.addWidget(self.canvas)
        self.report: dict[str, Any] | None = None

    def make_worker(self) -> Any:
        from napari.qt.threading import thread_worker

        layer = self.selected_layer()
        model_file = self.model_path()
        vol, scale, translate, flat = layer_volume(layer)
        n_tiles, want = int(self.n_tiles.value()), int(self.tile.value())

        _import_torch_stack()

        @thread_worker(connect={"returned": self._done(self._show)}, start_thread=False)
        @_user_errors
        def job():
            model = slicewise.load_model(model_file)
            d = model.size_divisor
            tile = max(d, min(want, min(vol.shape[1], vol.shape[2])) // d * d)
            yield f"model loaded; attributing {n_tiles} tile(s) of {tile} px…"
            n_maps = min(4, n_tiles)
            report = slicewise.audit.attribution_report(
                model,
                vol,
                n_tiles=n_tiles,
                tile=tile,
                method="saliency",
                n_maps=n_maps,
                n_resamples=500,
                device="cpu",
                seed=SEED,
            )
            yield "attribution done; drawing"
            return layer.name, report, vol.shape[:3], scale, translate, flat

        return job()

    def _show(self, result: tuple[Any, ...]) -> None:
        name, report, shape, scale, translate, flat = result
        self.report = report
        shares = report["shares"]
        k = len(shares)
        vals = np.array([s["value"] for s in shares])
        err = np.abs(np.array([s["ci"] for s in shares]).T - vals)
        ma = report["mirror_asymmetry"]
        self.figure.clear()
        ax = self.figure.add_subplot(111)
        ax.bar(range(k), vals, yerr=err, capsize=3, color="tab:blue")
        ax.axhline(1.0 / k, color="k", ls="--", lw=0.8)
        ax.set_xticks(range(k), [f"{s['offset']:+d}" for s in shares])
        ax.set_xlabel("slice z-offset")
        ax.set_ylabel("attribution share")
        ax.set_title(f"{name}: MA {ma['value']:.3f} [{ma['ci'][0]:.3f}, {ma['ci'][1]:.3f}]", fontsize=9)
        self.canvas.draw()
        maps = report.get("maps") or {}
        attr = maps.get("attributions")
        if attr is not None:
            colors = attr.shape[1] // k
            per = attr.reshape(attr.shape[0], k, colors, *attr.shape[2:]).sum(2)  # (tiles, k, t, t)
            placed = attribution_volumes(per, maps["origins"], shape)  # each map back where its tile is
            if flat:
                placed, scale, translate = placed[:, 0], scale[1:], translate[1:]
            for c, s in enumerate(shares):
                self.viewer.add_image(
                    placed[c],
                    name=f"{name} attribution z{s['offset']:+d}",
                    colormap="inferno",
                    blending="additive",
                    scale=scale,
                    translate=translate,
                    contrast_limits=(0.0, float(per.max()) or 1.0),
                    visible=False,
                )
        self.progress.setValue(self.progress.maximum())
        self.status.setText(
            f"MA = {ma['value']:.3f} (95% CI {ma['ci'][0]:.3f}–{ma['ci'][1]:.3f}) over {len(report['tile_shares'])} "
            "tiles; "
            f"shares {', '.join(f'{v:.3f}' for v in vals)}"
        )
