"""napari reader for slicewise outputs.

OME-Zarr predictions (docs/ARCHITECTURE.md, "Prediction store layout"): the root multiscale image
(axes ``c, z, y, x``; level 0 first) becomes one image layer per channel, named from
``slicewise.channels`` (else ``omero.channels[].label``, else the fallback name of
:func:`slicewise.data.io.formats.channel_name`), with the scale and translation of level 0 (the other
levels form the pyramid); uint8-quantized stores (``slicewise.quantisation.scale``) are de-quantized
lazily to float32 probabilities. ``labels/<name>`` label images become labels layers. A labels-only
prediction (root axes ``z, y, x``) gives the labels layer only. All NGFF metadata is parsed by
:mod:`slicewise.data.io.ngff` (validated: one line naming the file and the field; the same scale,
translation and v0.5 rules as every other reader).

Report folders (``slicewise audit ... --report``: ``index.html`` + ``report.json``; ``slicewise
study``: ``report.html`` + ``figures/``; ``slicewise demo``: ``results.json``): every PNG figure
opens as an RGB image layer named after its file.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from slicewise.data.io import ngff
from slicewise.data.io.formats import REPORT_MARKERS, named_channels
from slicewise.errors import InputError

log = logging.getLogger(__name__)

LayerData = tuple[Any, dict[str, Any], str]


def _is_report(path: Path) -> bool:
    return (
        path.is_dir()
        and path.suffix != ".zarr"
        and any((path / m).is_file() for m in REPORT_MARKERS)
        and bool(_figures(path))
    )


def _figures(path: Path) -> list[Path]:
    return sorted([*path.glob("*.png"), *path.glob("figures/*.png")])


def napari_get_reader(path: str | list[str]) -> Callable[[str | list[str]], list[LayerData]] | None:
    """The reader for a slicewise OME-Zarr prediction or report folder, else None (napari tries others)."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    p = Path(path)
    if p.suffix == ".zarr" and p.is_dir() and ngff.declares_multiscales(p):
        return read_prediction_layers
    if _is_report(p):
        return read_report_layers
    return None


def _pyramid(path: Path) -> tuple[ngff.NGFFPyramid, list[Any], list[float], list[float]]:
    """(the opened image, lazy dask levels, scale, translation of level 0) of the NGFF image at ``path``
    (:func:`slicewise.data.io.ngff.open_pyramid`: validated metadata, dataset paths inside the image, levels that
    agree)."""
    import dask.array as da

    image = ngff.open_pyramid(path)
    if image is None:
        raise InputError(f"{path} is not an OME-Zarr image (no NGFF multiscales metadata)")
    scale, translate = image.transform(0)
    return image, [da.from_zarr(a) for a in image.arrays], scale, translate


def channel_names(attrs: dict[str, Any], n: int) -> list[str]:
    """Channel names: ``slicewise.channels``, else ``omero.channels[].label``, else
    :func:`slicewise.data.io.formats.channel_name` for each channel."""
    names = (attrs.get("slicewise") or {}).get("channels") or [
        c.get("label") for c in (attrs.get("omero") or {}).get("channels", [])
    ]
    return named_channels([str(x) for x in names if x], n)


def read_prediction_layers(path: str | list[str]) -> list[LayerData]:
    """Image layers (one per channel) + labels layers of a slicewise OME-Zarr prediction."""
    p = Path(path[0] if isinstance(path, list) else path)
    image, levels, scale, translate = _pyramid(p)
    attrs, axes = image.attrs, image.axes
    layers: list[LayerData] = []
    quant = ((attrs.get("slicewise") or {}).get("quantisation") or {}).get("scale")
    if "c" in axes:
        c = axes.index("c")
        names = channel_names(attrs, int(levels[0].shape[c]))
        if quant is not None:
            levels = [(lv.astype(np.float32) * np.float32(quant)) for lv in levels]
        spatial = [i for i in range(len(axes)) if i != c]
        meta = {
            "channel_axis": c,
            "name": [f"{p.stem} {n}" for n in names],
            "scale": [scale[i] for i in spatial],
            "translate": [translate[i] for i in spatial],
            "multiscale": len(levels) > 1,
            "blending": "additive",
            "metadata": {"slicewise_channels": names, "source": str(p)},
        }
        if quant is not None or np.issubdtype(levels[0].dtype, np.floating):
            meta["contrast_limits"] = [0.0, 1.0]
        layers.append((levels if len(levels) > 1 else levels[0], meta, "image"))
    label_images = ngff.label_images(p)
    if label_images:
        for name, folder in label_images.items():
            _, lv, sc, tr = _pyramid(folder)
            layers.append(
                (
                    lv if len(lv) > 1 else lv[0],
                    {"name": f"{p.stem} {name}", "scale": sc, "translate": tr, "multiscale": len(lv) > 1},
                    "labels",
                )
            )
    elif "c" not in axes:  # a labels-only prediction without the labels/ group
        layers.append(
            (
                levels if len(levels) > 1 else levels[0],
                {"name": f"{p.stem} labels", "scale": scale, "translate": translate},
                "labels",
            )
        )
    return layers


def read_report_layers(path: str | list[str]) -> list[LayerData]:
    """Every PNG figure of an audit / study / demo folder as an RGB image layer (named after the file)."""
    from PIL import Image

    p = Path(path[0] if isinstance(path, list) else path)
    layers: list[LayerData] = []
    for fig in _figures(p):
        rgb = np.asarray(Image.open(fig).convert("RGB"))
        layers.append((rgb, {"name": fig.stem, "rgb": True, "metadata": {"source": str(fig)}}, "image"))
    return layers
