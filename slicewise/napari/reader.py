"""napari reader for slicewise outputs.

OME-Zarr predictions (docs/ARCHITECTURE.md, "Prediction store layout"): the root multiscale image
(axes ``c, z, y, x``; level 0 first) becomes one image layer per channel, named from
``slicewise.channels`` (else ``omero.channels[].label``, else ``channel<i>``), with the scale and
translation of level 0's ``coordinateTransformations`` (the other levels form the pyramid);
uint8-quantised stores (``slicewise.quantisation.scale``) are de-quantised lazily to float32
probabilities. ``labels/<name>`` label images become labels layers. A labels-only prediction
(root axes ``z, y, x``) gives the labels layer only.

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

from slicewise.errors import InputError
from slicewise.utils.validation import confined_path

log = logging.getLogger(__name__)

LayerData = tuple[Any, dict[str, Any], str]
REPORT_MARKERS = ("report.json", "report.html", "index.html", "results.json")


def _ngff(attrs: dict[str, Any]) -> dict[str, Any]:
    """NGFF attributes at the group root (v0.4) or under ``ome`` (v0.5)."""
    return attrs.get("ome", attrs) if "multiscales" not in attrs else attrs


def _is_prediction(path: Path) -> bool:
    import zarr

    try:
        return "multiscales" in _ngff(dict(zarr.open_group(str(path), mode="r").attrs))
    except Exception:  # noqa: BLE001  (anything unreadable is not ours; napari tries the next reader)
        return False


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
    if p.suffix == ".zarr" and p.is_dir() and _is_prediction(p):
        return read_prediction_layers
    if _is_report(p):
        return read_report_layers
    return None


def _transforms(dataset: dict[str, Any], n_axes: int) -> tuple[list[float], list[float]]:
    scale, translate = [1.0] * n_axes, [0.0] * n_axes
    for t in dataset.get("coordinateTransformations", []):
        if t.get("type") == "scale":
            scale = [float(v) for v in t["scale"]]
        elif t.get("type") == "translation":
            translate = [float(v) for v in t["translation"]]
    return scale, translate


def _pyramid(path: Path) -> tuple[list[Any], list[float], list[float], list[str]]:
    """(lazy dask levels, scale, translation, axis names) of the NGFF multiscale image at ``path``, through the
    one validated NGFF parser (:func:`slicewise.data.ome_zarr.ngff_attrs`: bad metadata is one line naming the
    file and the field; dataset paths stay inside the image; levels agree)."""
    import dask.array as da

    from slicewise.data import ome_zarr

    ngff = ome_zarr.ngff_attrs(path)
    if ngff is None:
        raise InputError(f"{path} is not an OME-Zarr image (no NGFF multiscales metadata)")
    multiscale = ngff["multiscales"][0]
    axes = [a["name"] for a in multiscale.get("axes", [])]
    levels = [da.from_zarr(a) for a in ome_zarr.check_levels(path, multiscale)]
    scale, translate = _transforms(multiscale["datasets"][0], levels[0].ndim)
    return levels, scale, translate, axes or ["c", "z", "y", "x"][-levels[0].ndim :]


def channel_names(attrs: dict[str, Any], n: int) -> list[str]:
    """Channel names: ``slicewise.channels``, else ``omero.channels[].label``, else ``channel<i>``."""
    names = (attrs.get("slicewise") or {}).get("channels") or [
        c.get("label") for c in (attrs.get("omero") or {}).get("channels", [])
    ]
    names = [str(x) for x in names if x]
    return names if len(names) == n else [f"channel{i}" for i in range(n)]


def read_prediction_layers(path: str | list[str]) -> list[LayerData]:
    """Image layers (one per channel) + labels layers of a slicewise OME-Zarr prediction."""
    import zarr

    p = Path(path[0] if isinstance(path, list) else path)
    root = zarr.open_group(str(p), mode="r")
    attrs = dict(root.attrs)
    layers: list[LayerData] = []
    levels, scale, translate, axes = _pyramid(p)
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
    if "labels" in root:
        for name in dict(root["labels"].attrs).get("labels", []):
            lv, sc, tr, _ = _pyramid(confined_path(p / "labels", str(name), p / "labels" / ".zattrs", "labels"))
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
