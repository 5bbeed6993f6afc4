"""OME-Zarr (OME-NGFF): THE NGFF module. Parses (validated models) and writes NGFF metadata, builds pyramids,
declares label images, and reads multiscale images as volumes.

This is the one place that knows the NGFF layout: :func:`open_volume` (through the Zarr reader), the prediction
reader and napari's reader all read NGFF through it, with the same voxel-size, transformation and v0.5 rules.
Axes are named ``c`` (channel), ``z``, ``y``, ``x`` (space, nanometer). Level ``l`` of a pyramid has the
scale ``voxel_size · (1, 2^l, 2^l)`` in (z, y, x): z is never downsampled (EM sections are thick), channels never.

Conventions (decisions the NGFF spec leaves open):

- Writing: v0.4 metadata on Zarr format 2 groups (what napari-ome-zarr, neuroglancer and the ``ome-zarr``
  package read). Space axes carry ``"unit": "nanometer"`` when the voxel size is known; without a voxel
  size the scale is 1 and the unit is omitted (and a reader gets ``voxel_size=None`` back).
- Pyramid levels ``l ≥ 1`` built by ``mean`` or ``mode`` cover 2^l × 2^l level-0 pixels, so their pixel
  centres sit ``(2^l − 1)/2`` level-0 pixels further in y/x: they carry that half-pixel shift as a
  ``translation`` (as ``ome-zarr``'s own writer does); ``stride`` levels do not. An ``offset_zyx`` (the voxel
  offset of level 0 in the source volume, e.g. a prediction of a ROI) adds ``offset × voxel size``.
- Odd sizes: a level has ``ceil(n / 2)`` pixels along y/x; border windows use the pixels that exist.
- ``mode`` breaks ties towards the smaller value (deterministic; background 0 wins a 2–2 tie).
- Reading: v0.4 (``.zattrs``) and v0.5 (zarr v3 ``zarr.json``, attributes under ``ome``). A leading ``t``
  axis of size 1 is dropped (longer time series are refused). A ``c`` axis of size 1 is dropped (gray
  Z×Y×X volume); with C > 1 the volume is channel-last Z×Y×X×C (slicewise's color convention), read
  lazily from the channel-first array. A 2-D (y, x) image is a volume of depth 1. The voxel size is
  the (z, y, x) part of the level's ``scale`` (times a multiscale-wide scale, if any) converted to nm
  from the axis unit; unknown when the space axes have no unit (or an unknown one). A level's placement
  (:meth:`NGFFPyramid.transform`) composes its own transformations, then the multiscale-wide ones, in order.
- Trust: NGFF attributes are metadata from a file, parsed into :class:`NGFFImage` (one validated model for
  v0.4 ``.zattrs`` and v0.5 ``zarr.json`` ``ome``) by :func:`read_ngff`, the one NGFF parser;
  :func:`open_pyramid` opens an image with all its levels (:class:`NGFFPyramid`: axes, transformations, voxel
  size, channel labels) and :func:`label_images` lists its label images. A bad field is one line naming the
  file and the field; dataset paths must stay inside the store; levels must agree with each other (same axes,
  same channels and time points, sizes that shrink with the scale).
"""

from __future__ import annotations

import itertools
import json
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from slicewise.data.io.formats import channel_name
from slicewise.data.io.integrity import warn_missing_chunks
from slicewise.data.io.lazy import Key, LazyView
from slicewise.data.io.volume import Volume
from slicewise.errors import InputError
from slicewise.utils.validation import MetadataModel, confined_path, parse_metadata

log = logging.getLogger(__name__)

DOWNSCALE = 2
NGFF_VERSION = "0.4"
AXIS_TYPES = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}
NM_PER_UNIT = {
    "angstrom": 0.1,
    "picometer": 1e-3,
    "nanometer": 1.0,
    "micrometer": 1e3,
    "millimeter": 1e6,
    "centimeter": 1e7,
    "decimeter": 1e8,
    "meter": 1e9,
    "kilometer": 1e12,
    # common non-UDUNITS spellings seen in the wild
    "nm": 1.0,
    "um": 1e3,
    "µm": 1e3,
    "\u03bcm": 1e3,
    "micron": 1e3,
    "mm": 1e6,
    "m": 1e9,
}
_COLORS = ("FFFFFF", "FF00FF", "00FF00", "00FFFF", "FFFF00", "FF0000", "0000FF", "FF8000")
_BLOCK_BYTES = 64 << 20


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def _as_group(group: Any, mode: str = "a") -> Any:
    import zarr

    if isinstance(group, (str, Path)):
        return zarr.open_group(str(group), mode=mode)
    return group


def _check_axes(axes: Sequence[str], what: str = "") -> list[str]:
    names = [str(a) for a in axes]
    spatial = [a for a in names if AXIS_TYPES.get(a) == "space"]
    order = "".join(names)
    if (
        any(a not in AXIS_TYPES for a in names)
        or len(set(names)) != len(names)
        or order not in ("tczyx", "czyx", "tzyx", "zyx", "cyx", "yx", "tcyx", "tyx")
        or len(spatial) < 2
    ):
        message = f"NGFF axes must be an ordered subset of (t, c, z, y, x) ending in y, x, got {tuple(names)}"
        if what:  # inside a metadata model: pydantic names the file and the field
            raise ValueError(message)
        raise InputError(message)
    return names


def _level_transforms(
    axes: Sequence[str],
    voxel_size: Sequence[float] | None,
    level: int,
    *,
    method: str,
    downscale: int,
    offset_zyx: Sequence[int] | None,
) -> list[dict[str, Any]]:
    """``[scale, (translation)]`` of pyramid level ``level`` in axis order."""
    vs = dict(zip("zyx", (float(v) for v in voxel_size))) if voxel_size is not None else dict.fromkeys("zyx", 1.0)
    off = dict(zip("zyx", (float(o) for o in offset_zyx))) if offset_zyx is not None else dict.fromkeys("zyx", 0.0)
    factor = {"z": 1, "y": downscale**level, "x": downscale**level}
    shift = method != "stride" and level > 0
    scale, trans = [], []
    for a in axes:
        if a in factor:
            scale.append(vs[a] * factor[a])
            centre = (factor[a] - 1) / 2 if shift else 0.0
            trans.append(vs[a] * (off[a] + centre))
        else:
            scale.append(1.0)
            trans.append(0.0)
    out: list[dict[str, Any]] = [{"type": "scale", "scale": scale}]
    if any(t != 0.0 for t in trans):
        out.append({"type": "translation", "translation": trans})
    return out


def _multiscale(
    axes: Sequence[str],
    voxel_size: Sequence[float] | None,
    n_levels: int,
    *,
    name: str,
    method: str,
    downscale: int,
    offset_zyx: Sequence[int] | None,
) -> dict[str, Any]:
    axes = _check_axes(axes)
    if voxel_size is not None and len(voxel_size) != 3:
        raise InputError(f"voxel_size must be (z, y, x) in nm, got {tuple(voxel_size)}")
    if offset_zyx is not None and len(offset_zyx) != 3:
        raise InputError(f"offset_zyx must be (z, y, x) voxels, got {tuple(offset_zyx)}")
    if n_levels < 1:
        raise InputError(f"an NGFF image needs at least one level, got n_levels={n_levels}")
    axes_meta = []
    for a in axes:
        entry = {"name": a, "type": AXIS_TYPES[a]}
        if AXIS_TYPES[a] == "space" and voxel_size is not None:
            entry["unit"] = "nanometer"
        axes_meta.append(entry)
    datasets = [
        {
            "path": str(level),
            "coordinateTransformations": _level_transforms(
                axes, voxel_size, level, method=method, downscale=downscale, offset_zyx=offset_zyx
            ),
        }
        for level in range(n_levels)
    ]
    return {
        "version": NGFF_VERSION,
        "name": name,
        "axes": axes_meta,
        "datasets": datasets,
        "type": method,
        "metadata": {"method": f"slicewise.data.io.ngff.build_pyramid ({method})", "downscale": downscale},
    }


def _window(dtype: np.dtype) -> dict[str, float]:
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return {"min": float(info.min), "max": float(info.max), "start": float(info.min), "end": float(info.max)}
    return {"min": 0.0, "max": 1.0, "start": 0.0, "end": 1.0}


def write_image_metadata(
    group: Any,
    *,
    axes: Sequence[str],
    voxel_size: Sequence[float] | None,
    n_levels: int,
    channel_names: Sequence[str] | None = None,
    name: str = "",
    method: str = "mean",
    downscale: int = DOWNSCALE,
    offset_zyx: Sequence[int] | None = None,
) -> None:
    """Write ``multiscales`` (v0.4) on a Zarr-v2 ``group`` whose arrays ``"0"`` … ``str(n_levels-1)`` exist.

    ``axes``: e.g. ``("c", "z", "y", "x")`` or ``("z", "y", "x")``. ``voxel_size``: (z, y, x) nm, or
    ``None`` (scale 1, unit omitted). With ``channel_names``, also an ``omero`` block whose channel
    ``label`` s are the names (napari shows them as layer names). ``offset_zyx``: voxel offset of level 0
    in the source volume, written as a ``translation`` (after ``scale``) = offset × voxel size.
    Other attributes of the group are kept.
    """
    group = _as_group(group)
    ms = _multiscale(axes, voxel_size, n_levels, name=name, method=method, downscale=downscale, offset_zyx=offset_zyx)
    attrs: dict[str, Any] = {"multiscales": [ms]}
    if channel_names is not None:
        names = [str(n) for n in channel_names]
        if "c" in axes and "0" in group:
            n_c = int(group["0"].shape[list(axes).index("c")])
            if n_c != len(names):
                raise InputError(f"{len(names)} channel names {names} for {n_c} channels: give one name per channel")
        dtype = np.dtype(group["0"].dtype) if "0" in group else np.dtype("float32")
        attrs["omero"] = {
            "name": name,
            "version": NGFF_VERSION,
            "channels": [
                {
                    "label": n,
                    "color": _COLORS[i % len(_COLORS)],
                    "active": True,
                    "coefficient": 1.0,
                    "family": "linear",
                    "inverted": False,
                    "window": _window(dtype),
                }
                for i, n in enumerate(names)
            ],
            "rdefs": {"model": "color" if len(names) > 1 else "greyscale", "defaultZ": 0, "defaultT": 0},
        }
    group.attrs.update(attrs)


def write_labels_metadata(
    root: Any,
    name: str,
    *,
    voxel_size: Sequence[float] | None,
    n_levels: int,
    downscale: int = DOWNSCALE,
    method: str = "mode",
    offset_zyx: Sequence[int] | None = None,
) -> None:
    """Declare ``root/labels/<name>`` (arrays ``0`` … with axes z, y, x) as an NGFF label image: the
    ``labels`` list in ``root/labels`` attributes, ``multiscales`` and ``image-label`` (source ``../../``).
    ``method``/``offset_zyx`` as in :func:`write_image_metadata` (use the image's offset)."""
    root = _as_group(root)
    labels = root.require_group("labels")
    listed = list(labels.attrs.get("labels", []))
    if name not in listed:
        listed.append(name)
    labels.attrs.update({"labels": listed})
    image = labels[name]
    ms = _multiscale(
        ("z", "y", "x"), voxel_size, n_levels, name=name, method=method, downscale=downscale, offset_zyx=offset_zyx
    )
    image.attrs.update({"multiscales": [ms], "image-label": {"version": NGFF_VERSION, "source": {"image": "../../"}}})


def _mean(windows: np.ndarray, dtype: np.dtype) -> np.ndarray:
    acc = windows.astype(np.float64 if dtype == np.float64 else np.float32).mean(axis=-1)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(acc), info.min, info.max).astype(dtype)
    if np.dtype(dtype).kind == "b":
        return acc >= 0.5
    return acc.astype(dtype)


def _mode(windows: np.ndarray) -> np.ndarray:
    """Most frequent value along the last axis; ties → the smaller value (memory: a few output-sized arrays)."""
    w = np.sort(windows, axis=-1)
    k = w.shape[-1]
    best = w[..., 0].copy()
    best_n = np.zeros(best.shape, np.uint16)
    for i in range(k):
        n = np.zeros(best.shape, np.uint16)
        for j in range(k):
            n += w[..., j] == w[..., i]
        better = n > best_n
        best[better] = w[..., i][better]
        best_n[better] = n[better]
    return best


def downsample(block: np.ndarray, method: Literal["mean", "mode", "stride"], downscale: int = DOWNSCALE) -> np.ndarray:
    """Downsample the last two axes (Y, X) of ``block`` by ``downscale`` (output ``ceil(n / downscale)``).

    Border windows of odd sizes are filled by repeating their edge pixels, which leaves the mean and
    the mode of the existing pixels unchanged."""
    d = int(downscale)
    if method == "stride":
        return np.ascontiguousarray(block[..., ::d, ::d])
    if method not in ("mean", "mode"):
        raise InputError(f"pyramid method {method!r} is unknown: use mean, mode or stride")
    h, w = block.shape[-2:]
    ph, pw = (-h) % d, (-w) % d
    if ph or pw:
        block = np.pad(block, [(0, 0)] * (block.ndim - 2) + [(0, ph), (0, pw)], mode="edge")
    h2, w2 = block.shape[-2] // d, block.shape[-1] // d
    win = block.reshape(*block.shape[:-2], h2, d, w2, d)
    win = np.moveaxis(win, -3, -2).reshape(*block.shape[:-2], h2, w2, d * d)
    return _mean(win, block.dtype) if method == "mean" else _mode(win)


def _blocks(shape: Sequence[int], chunks: Sequence[int], itemsize: int, budget: int) -> Iterator[tuple[slice, ...]]:
    """Chunk-aligned regions of ``shape`` holding at most ~``budget`` bytes (at least one chunk)."""
    step = list(chunks)
    # grow along X, Y, then the leading axes while it fits: fewer, larger reads
    for ax in [len(shape) - 1, len(shape) - 2, *range(len(shape) - 3, -1, -1)]:
        while step[ax] < shape[ax] and math.prod(step) * 2 * itemsize <= budget:
            step[ax] *= 2
    starts = [range(0, n, s) for n, s in zip(shape, step)]
    for origin in itertools.product(*starts):
        yield tuple(slice(o, min(o + s, n)) for o, s, n in zip(origin, step, shape))


def build_pyramid(
    group: Any,
    *,
    method: Literal["mean", "mode", "stride"],
    n_levels: int | None = None,
    min_size: int = 64,
    downscale: int = DOWNSCALE,
) -> int:
    """Write levels ``"1"``, ``"2"``, … of ``group`` from array ``"0"`` (last two axes Y, X), block by block
    (memory bounded by a block, never the volume), halving Y and X per level until the smaller of them
    would drop below ``min_size`` or ``n_levels`` exist. ``mean`` for probabilities (computed in float,
    rounded back for integer dtypes), ``mode`` for label images, ``stride`` = every 2nd pixel. Returns the
    number of levels (≥ 1).

    Each level is computed from the previous one (a mean of means over equal windows is the mean over
    the 2^l × 2^l window, except at odd borders), with the chunks and compressor of level 0.
    """
    if method not in ("mean", "mode", "stride"):
        raise InputError(f"pyramid method {method!r} is unknown: use mean, mode or stride")
    group = _as_group(group)
    d = int(downscale)
    src = group["0"]
    level = 1
    while n_levels is None or level < n_levels:
        h, w = src.shape[-2:]
        nh, nw = -(-h // d), -(-w // d)
        if min(nh, nw) < min_size or (h, w) == (nh, nw):
            break
        shape = (*src.shape[:-2], nh, nw)
        chunks = tuple(min(c, n) for c, n in zip(group["0"].chunks, shape))
        kwargs: dict[str, Any] = {
            "shape": shape,
            "chunks": chunks,
            "dtype": src.dtype,
            "overwrite": True,
            "fill_value": src.fill_value,
            "config": {"write_empty_chunks": True},
        }
        if hasattr(src, "compressors"):
            kwargs["compressors"] = src.compressors
        dst = group.create_array(str(level), **kwargs)
        for out in _blocks(shape, chunks, (np.dtype(src.dtype).itemsize + 4) * d * d, _BLOCK_BYTES):
            inp = (*out[:-2], *(slice(s.start * d, min(s.stop * d, n)) for s, n in zip(out[-2:], (h, w))))
            dst[out] = downsample(np.asarray(src[inp]), method, d)
        src = dst
        level += 1
    return level


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


_NGFF_FIX = "the image's NGFF metadata is invalid: re-export it (e.g. with ome-zarr or slicewise predict)"


class NGFFAxis(MetadataModel):
    """One entry of ``multiscales[].axes`` (v0.3 plain strings are read as ``{"name": ...}``)."""

    name: str = Field(min_length=1)
    type: str | None = None
    unit: str | None = None


class NGFFTransform(MetadataModel):
    """A ``coordinateTransformations`` entry: ``scale`` / ``translation`` lists of numbers (``identity`` and
    other types are kept but unused)."""

    type: str
    scale: list[float] | None = None
    translation: list[float] | None = None

    @model_validator(mode="after")
    def _values(self) -> NGFFTransform:
        if self.type == "scale":
            if self.scale is None:
                raise ValueError("a 'scale' transformation needs a 'scale' list")
            if not all(math.isfinite(v) and v > 0 for v in self.scale):
                raise ValueError(f"scale {self.scale} must hold positive finite numbers")
        if self.type == "translation" and self.translation is None:
            raise ValueError("a 'translation' transformation needs a 'translation' list")
        if self.translation is not None and not all(math.isfinite(v) for v in self.translation):
            raise ValueError(f"translation {self.translation} must hold finite numbers")
        return self


class NGFFDataset(MetadataModel):
    """One pyramid level: ``path`` (relative, inside the group) and its transformations."""

    path: str = Field(min_length=1)
    coordinateTransformations: list[NGFFTransform] = []  # noqa: N815 - the NGFF field name

    @field_validator("path")
    @classmethod
    def _relative(cls, v: str) -> str:
        parts = v.replace("\\", "/").split("/")
        if v.startswith("/") or ".." in parts or ":" in parts[0]:
            raise ValueError("must be a relative path inside the image group (no '..', no absolute path)")
        return v


class NGFFMultiscale(MetadataModel):
    """``multiscales[i]``: axes (``None`` for v0.1/0.2 files: t, c, z, y, x), at least one dataset."""

    version: str | None = None
    name: str | None = None
    axes: list[NGFFAxis] | None = None
    datasets: list[NGFFDataset] = Field(min_length=1)
    coordinateTransformations: list[NGFFTransform] | None = None  # noqa: N815 - the NGFF field name

    @field_validator("axes", mode="before")
    @classmethod
    def _plain_names(cls, v: Any) -> Any:
        return [{"name": a} if isinstance(a, str) else a for a in v] if isinstance(v, list) else v

    @model_validator(mode="after")
    def _lengths(self) -> NGFFMultiscale:
        if self.axes is None:
            return self
        _check_axes([a.name for a in self.axes], "multiscales axes")
        n = len(self.axes)
        groups = [(f"datasets.{i}", d.coordinateTransformations) for i, d in enumerate(self.datasets)]
        groups.append(("coordinateTransformations", self.coordinateTransformations or []))
        for where, transforms in groups:
            for t in transforms:
                for values in (t.scale, t.translation):
                    if values is not None and len(values) != n:
                        raise ValueError(
                            f"{where}: a {t.type} of {len(values)} values for {n} axes "
                            f"({''.join(a.name for a in self.axes)}): give one value per axis"
                        )
        return self


class NGFFChannel(MetadataModel):
    label: str | None = None


class NGFFOmero(MetadataModel):
    channels: list[NGFFChannel] = []


class NGFFImage(MetadataModel):
    """The NGFF attributes of an image group (v0.4 ``.zattrs``, v0.5 ``zarr.json`` ``attributes.ome``)."""

    multiscales: list[NGFFMultiscale] = Field(min_length=1)
    omero: NGFFOmero | None = None


class NGFFLabelsGroup(MetadataModel):
    """The attributes of an image's ``labels`` group: the names of its label images."""

    labels: list[str] = []


def _group_attrs(path: Any) -> tuple[dict[str, Any] | None, str]:
    """(raw NGFF attributes or None when ``path`` is no group, the file they come from) of the group at ``path``:
    v0.4 ``.zattrs``, v0.5 ``zarr.json`` ``attributes.ome``, or an open group's attributes (``ome`` if present)."""
    if not isinstance(path, (str, Path)):
        attrs = dict(getattr(path, "attrs", {}) or {})
        attrs = attrs.get("ome", attrs) if isinstance(attrs.get("ome", attrs), dict) else attrs
        return attrs, f"{getattr(path, 'path', path)} attributes"
    p = Path(path)
    v3 = _read_json(p / "zarr.json")
    if isinstance(v3, dict):
        if v3.get("node_type") != "group":
            return None, str(p / "zarr.json")
        attrs = v3.get("attributes") or {}
        attrs = attrs.get("ome") if isinstance(attrs, dict) else None
        return (attrs if isinstance(attrs, dict) else None), str(p / "zarr.json")
    if (p / ".zgroup").is_file():
        attrs = _read_json(p / ".zattrs")
        return (attrs if isinstance(attrs, dict) else None), str(p / ".zattrs")
    return None, str(p)


def _ngff_source(path: Any) -> tuple[dict[str, Any] | None, str]:
    """(raw attributes holding ``multiscales`` or None, the file they come from) of the group at ``path``."""
    attrs, source = _group_attrs(path)
    return (attrs if attrs is not None and "multiscales" in attrs else None), source


def declares_multiscales(path: Any) -> bool:
    """True if the group at ``path`` declares NGFF ``multiscales`` (v0.4 or v0.5), valid or not: a cheap test for
    a reader deciding whether a path is its format; it then parses with :func:`open_pyramid`."""
    return _ngff_source(path)[0] is not None


def label_images(path: Any) -> dict[str, Path]:
    """Name → folder of the label images the NGFF image at ``path`` declares in its ``labels`` group (attribute
    ``labels``, v0.4 or v0.5), each confined to that group; ``{}`` without one."""
    group = Path(path) / "labels"
    attrs, source = _group_attrs(group)
    if not attrs or "labels" not in attrs:
        return {}
    names = parse_metadata(NGFFLabelsGroup, attrs, source, _NGFF_FIX).labels
    return {name: confined_path(group, name, source, f"labels.{i}") for i, name in enumerate(names)}


def read_ngff(path: Any) -> NGFFImage | None:
    """The validated NGFF metadata of the group at ``path`` (a folder or an open zarr group), or ``None`` when
    it declares no ``multiscales`` (not an NGFF image). Invalid metadata is one :class:`InputError` line
    naming the file and the field (``multiscales.0.datasets``)."""
    attrs, source = _ngff_source(path)
    if attrs is None:
        return None
    return parse_metadata(NGFFImage, attrs, source, _NGFF_FIX)


def _ngff_attrs(path: Any) -> dict[str, Any] | None:
    """The validated NGFF attributes of the group at ``path`` as plain data (``None``: not an NGFF image)."""
    image = read_ngff(path)
    return None if image is None else image.model_dump(exclude_none=True)


def is_ome_zarr(path: Any) -> bool:
    """True if ``path`` is a Zarr group carrying NGFF ``multiscales`` metadata."""
    return _ngff_attrs(path) is not None


def _axes(ms: dict[str, Any], ndim: int) -> list[dict[str, Any]]:
    axes = ms.get("axes")
    if axes is None:  # v0.1/0.2: always t, c, z, y, x
        axes = [{"name": a} for a in "tczyx"[-ndim:]]
    out = [{"name": a} if isinstance(a, str) else dict(a) for a in axes]
    for a in out:
        a.setdefault("type", AXIS_TYPES.get(a["name"]))
    return out


def _scale(transforms: Sequence[dict[str, Any]] | None, ndim: int) -> np.ndarray:
    s = np.ones(ndim)
    for t in transforms or ():
        if t.get("type") == "scale" and "scale" in t:
            s = s * np.asarray(t["scale"], dtype=float)
    return s


def levels(path: Any) -> list[dict[str, Any]]:
    """Pyramid levels of the NGFF image at ``path``: ``[{"path", "shape", "dtype", "voxel_size"}]`` (nm, or None)."""
    image = open_pyramid(path)
    if image is None:
        raise InputError(f"{path} is not an OME-Zarr image (no NGFF multiscales metadata)")
    return [
        {
            "path": ds_path,
            "shape": tuple(int(n) for n in arr.shape),
            "dtype": str(arr.dtype),
            "axes": "".join(image.axes),
            "voxel_size": image.voxel_size(i),
        }
        for i, (ds_path, arr) in enumerate(zip(image.paths, image.arrays))
    ]


def _open_level(p: Path, ms: dict[str, Any], index: int) -> Any:
    """The zarr array of dataset ``index`` of ``ms`` (its path confined to the image group ``p``)."""
    import zarr

    ds = ms["datasets"][index]
    where = confined_path(p, ds["path"], _ngff_source(p)[1], f"multiscales.0.datasets.{index}.path")
    try:
        return zarr.open_array(str(where), mode="r")
    except Exception as err:  # noqa: BLE001 - zarr raises several types for a missing/corrupt array
        raise InputError(
            f"cannot open level {ds['path']!r} of {p} ({type(err).__name__}): is the image complete?"
        ) from None


def _check_levels(p: Path, ms: dict[str, Any]) -> list[Any]:
    """The arrays of every level of ``ms``, refused in one line unless they agree: one rank = the number of
    axes, the same ``t``/``c`` sizes, and spatial sizes that follow the scales (level 0 size × scale ratio,
    ±1 for rounding)."""
    arrays = [_open_level(p, ms, i) for i in range(len(ms["datasets"]))]
    source = _ngff_source(p)[1]
    names = [a["name"] for a in _axes(ms, arrays[0].ndim)]
    first = tuple(int(n) for n in arrays[0].shape)
    scale0 = _scale(ms["datasets"][0].get("coordinateTransformations"), len(names))
    before = first
    for ds, arr in zip(ms["datasets"], arrays):
        shape = tuple(int(n) for n in arr.shape)
        if len(shape) == len(before) and any(n > b for n, b in zip(shape, before)):
            raise InputError(
                f"{source}: level {ds['path']!r} {shape} is larger than the level before it {before}: "
                f"levels must go from full resolution down; re-export the pyramid"
            )
        before = shape
        if len(shape) != len(names):
            raise InputError(
                f"{source}: level {ds['path']!r} is {len(shape)}-d but the image has {len(names)} axes "
                f"({''.join(names)}): the pyramid is inconsistent; re-export it"
            )
        scale = _scale(ds.get("coordinateTransformations"), len(names))
        for j, a in enumerate(names):
            expected = first[j] if AXIS_TYPES.get(a) != "space" else first[j] * scale0[j] / scale[j]
            if abs(shape[j] - expected) > (0 if AXIS_TYPES.get(a) != "space" else 1):
                raise InputError(
                    f"{source}: level {ds['path']!r} has shape {shape}, inconsistent with level "
                    f"{ms['datasets'][0]['path']!r} {first} along axis {a} (scale {scale[j]:g} vs "
                    f"{scale0[j]:g}): the pyramid is inconsistent; re-export it"
                )
    return arrays


def channel_names(path: Any) -> list[str] | None:
    """Channel labels of an NGFF image (``omero.channels[].label``), or ``None``."""
    attrs = _ngff_attrs(path) or {}
    channels = (attrs.get("omero") or {}).get("channels")
    if not channels:
        return None
    return [str(c.get("label") or channel_name(i)) for i, c in enumerate(channels)]


def _voxel_size(
    ms: dict[str, Any], ds: dict[str, Any], axes: list[dict[str, Any]]
) -> tuple[float, float, float] | None:
    scale = _scale(ds.get("coordinateTransformations"), len(axes)) * _scale(
        ms.get("coordinateTransformations"), len(axes)
    )
    names = [a["name"] for a in axes]
    if not {"y", "x"} <= set(names) or "z" not in names:
        return None
    out = []
    for n in "zyx":
        unit = axes[names.index(n)].get("unit")
        factor = NM_PER_UNIT.get(str(unit).lower()) if unit else None
        if factor is None:
            if unit:
                log.warning("unknown unit %r on axis %s: voxel size unknown", unit, n)
            return None
        out.append(float(scale[names.index(n)]) * factor)
    return tuple(out)  # type: ignore[return-value]


def _voxel_size_of(ms: dict[str, Any], index: int, ndim: int) -> tuple[float, float, float] | None:
    """(z, y, x) nm of level ``index`` (an ``ndim``-d array) of a validated multiscale (:func:`_ngff_attrs`),
    or None when unknown (no unit on the space axes)."""
    return _voxel_size(ms, ms["datasets"][index], _axes(ms, ndim))


def _affine(transforms: Sequence[dict[str, Any]] | None, scale: list[float], shift: list[float]) -> None:
    """Compose ``transforms`` (applied in order) onto ``(scale, shift)`` in place: x → x·scale + shift."""
    for t in transforms or ():
        if t.get("type") == "scale" and "scale" in t:
            for i, v in enumerate(t["scale"]):
                scale[i] *= float(v)
                shift[i] *= float(v)
        elif t.get("type") == "translation" and "translation" in t:
            for i, v in enumerate(t["translation"]):
                shift[i] += float(v)


@dataclass(frozen=True)
class NGFFPyramid:
    """An NGFF image opened for reading (:func:`open_pyramid`): its validated attributes as plain data and the
    zarr arrays of its levels, level 0 first, checked to agree with each other (:func:`_check_levels`)."""

    path: Path
    attrs: dict[str, Any]
    arrays: list[Any]

    @property
    def multiscale(self) -> dict[str, Any]:
        """The first ``multiscales`` entry (the one slicewise reads)."""
        return self.attrs["multiscales"][0]

    @property
    def paths(self) -> list[str]:
        """The dataset paths of the levels, level 0 first."""
        return [str(d["path"]) for d in self.multiscale["datasets"]]

    @property
    def axes(self) -> list[str]:
        """Axis names in array order (v0.1/0.2 files without axes: the last ``ndim`` of t, c, z, y, x)."""
        return [a["name"] for a in _axes(self.multiscale, self.arrays[0].ndim)]

    @property
    def source(self) -> str:
        """The file the metadata comes from (for messages)."""
        return _ngff_source(self.path)[1]

    def transform(self, level: int = 0) -> tuple[list[float], list[float]]:
        """``(scale, translation)`` of ``level`` in axis order, in the axes' units: the level's
        ``coordinateTransformations`` then the multiscale-wide ones, composed in order (x → x·scale + translation)."""
        n = len(self.axes)
        scale, shift = [1.0] * n, [0.0] * n
        _affine(self.multiscale["datasets"][level].get("coordinateTransformations"), scale, shift)
        _affine(self.multiscale.get("coordinateTransformations"), scale, shift)
        return scale, shift

    def voxel_size(self, level: int = 0) -> tuple[float, float, float] | None:
        """(z, y, x) nm of ``level``, or None when unknown (no z axis, no unit or an unknown one on a space axis)."""
        return _voxel_size_of(self.multiscale, level, self.arrays[level].ndim)

    @property
    def channel_labels(self) -> list[str]:
        """``omero.channels[].label`` (empty when the image names no channels; unnamed entries → ``""``)."""
        channels = (self.attrs.get("omero") or {}).get("channels") or []
        return [str(c.get("label") or "") for c in channels]


def open_pyramid(path: Any) -> NGFFPyramid | None:
    """The NGFF image at ``path`` (a folder) with every level opened and checked, or ``None`` when ``path`` declares
    no ``multiscales``. The one entry point of the readers that need the whole pyramid (prediction reader, napari):
    invalid metadata, a dataset path leaving the image and levels that disagree are one :class:`InputError` line."""
    attrs = _ngff_attrs(path)
    if attrs is None:
        return None
    p = Path(path)
    return NGFFPyramid(p, attrs, _check_levels(p, attrs["multiscales"][0]))


class _NGFFArray(LazyView):
    """View of an N-d NGFF array as Z×Y×X or Z×Y×X×C: singleton ``t``/``c`` dropped, ``c`` moved last."""

    what = "NGFF image"

    def __init__(self, array: Any, names: list[str]) -> None:
        self._array, self._names = array, names
        shape = dict(zip(names, (int(n) for n in array.shape)))
        self._channels = shape.get("c", 1) > 1
        self.shape = tuple(shape[a] for a in "zyx" if a in shape) + ((shape["c"],) if self._channels else ())
        self.dtype = array.dtype

    def _read(self, key: Key) -> np.ndarray:
        spatial = [a for a in "zyx" if a in self._names]
        keys = dict(zip(spatial + (["c"] if self._channels else []), key))
        full = tuple(keys.get(a, 0) for a in self._names)
        out = np.asarray(self._array[full])
        if self._channels and isinstance(keys["c"], slice):
            kept = [a for a in self._names if isinstance(keys.get(a, 0), slice)]
            out = np.moveaxis(out, kept.index("c"), -1)
        return out


def _level_index(p: Path, paths: list[str], level: int | str) -> int:
    """The index of ``level`` (an index or a dataset path) among the dataset ``paths`` of the image at ``p``."""
    if isinstance(level, str) and level in paths:
        return paths.index(level)
    try:
        index = int(level)
    except ValueError:
        index = -1
    if not 0 <= index < len(paths):
        raise InputError(
            f"{p} has no pyramid level {level!r}: levels are 0..{len(paths) - 1} (dataset paths {', '.join(paths)})"
        )
    return index


def open_ome_zarr(path: Any, level: int | str = 0) -> Volume:
    """Open level ``level`` of an NGFF image as a lazy :class:`slicewise.data.io.Volume` (Z×Y×X or Z×Y×X×C),
    voxel size from the level's ``scale`` (converted to nm from the axis unit).

    ``level``: index into the pyramid (0 = full resolution) or a dataset path (e.g. ``"2"`` or ``"s2"``).
    """
    p = Path(path)
    image = open_pyramid(p)
    if image is None:
        raise InputError(f"{p} is not an OME-Zarr image (no NGFF multiscales metadata): open it as plain Zarr")
    index = _level_index(p, image.paths, level)
    ds_path = image.paths[index]
    arr, names = image.arrays[index], image.axes
    shape = dict(zip(names, arr.shape))
    if shape.get("t", 1) > 1:
        raise InputError(
            f"{p} is a time series ({shape['t']} time points): slicewise reads one Z×Y×X(×C) volume; "
            f"save one time point"
        )
    warn_missing_chunks(arr, f"{p}:{ds_path}", image.attrs)
    return Volume(
        _NGFFArray(arr, names),
        voxel_size=image.voxel_size(index),
        source=f"{p}:{ds_path}",
        add_depth="z" not in names,
        reopen=(open_ome_zarr, (p, ds_path)),
    )


def open_ngff_key(path: Path, key: str | None) -> Any | None:
    """The :func:`open_volume` hook: the Volume that ``path`` (+ ``key``) names inside an NGFF image, or ``None``.

    ``img.zarr`` → level 0; key ``"2"`` (a dataset path) → that level; key ``"labels/cells"`` → level 0 of
    that label image, ``"labels/cells/1"`` → its level 1. A path inside an image (``img.zarr/2``) works too.
    Anything else (a plain Zarr, a key that is no NGFF level) → ``None``: plain Zarr opening applies.
    """
    p = Path(path)
    if key is None and not is_ome_zarr(p):
        for anc in p.parents:
            if not any((anc / m).exists() for m in (".zgroup", "zarr.json")):
                break
            if is_ome_zarr(anc):
                return open_ngff_key(anc, p.relative_to(anc).as_posix())
        return None
    parts = [s for s in (key or "").split("/") if s]
    for i in range(len(parts), -1, -1):
        image = p.joinpath(*parts[:i])
        rest = "/".join(parts[i:])
        attrs = _ngff_attrs(image)
        if attrs is None:
            continue
        paths = [str(d["path"]) for d in attrs["multiscales"][0]["datasets"]]
        if not rest:
            return open_ome_zarr(image, 0)
        if rest in paths:
            return open_ome_zarr(image, rest)
        return None
    return None
