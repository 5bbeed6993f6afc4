"""Prediction outputs read back, and the probability dtypes they are stored in.

:func:`read_prediction` reads any layout slicewise writes (:mod:`slicewise.data.io.stores`): OME-Zarr (NGFF
v0.4 / v0.5, parsed by :mod:`slicewise.data.io.ngff`), the older ``.zarr`` group with ``probabilities`` /
``labels`` arrays, HDF5 and TIFF, or one plain array of a container (``key``). Arrays come back lazy: nothing is
read until indexed. :func:`read_prediction_probabilities` refuses an output without probabilities and
:func:`check_probability_values` is the one check of the values read (``segment`` and ``evaluate --prob``).

Probability dtypes: ``float32`` (exact), ``float16`` (|Δp| ≤ 2⁻¹¹ ≈ 4.9e-4 for p in [0, 1]) or ``uint8``
= round(255·p) with the attribute ``quantisation = {"scale": 1/255}`` (the stored attribute keeps that
spelling: files written earlier stay readable); :func:`read_prediction` returns ``q·scale`` as float32, so the
error is |Δp| ≤ 1/510 ≈ 0.00196 (half a quantization step). ``uint8`` is only offered for channels that are
probabilities (``seg`` softmax, ``boundary`` sigmoid); a raw head (``distance``) needs float16/float32.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import NonNegativeInt, PositiveFloat

from slicewise.data.io import ngff
from slicewise.data.io.formats import HDF5_SUFFIXES, TIFF_SUFFIXES, ZARR_SUFFIXES, channel_name, named_channels
from slicewise.data.io.integrity import damaged, tifffile_warnings, warn_missing_chunks, zarr_listing
from slicewise.data.io.lazy import Key, LazyView
from slicewise.data.io.readers import open_volume
from slicewise.data.io.readers.hdf5 import check_contained
from slicewise.errors import InputError
from slicewise.utils.inputs import check_input_path
from slicewise.utils.validation import MetadataModel, parse_metadata

__all__ = [
    "LABEL_KEY",
    "PROBABILITY_HINT",
    "PROB_DTYPES",
    "PROB_KEY",
    "UINT8_SCALE",
    "Prediction",
    "PredictionMeta",
    "check_probability_dtype",
    "check_probability_values",
    "dequantize",
    "prediction_meta",
    "probability_view",
    "quantize",
    "read_prediction",
    "read_prediction_probabilities",
]

PROB_KEY, LABEL_KEY = "probabilities", "labels"
PROB_DTYPES: tuple[str, ...] = ("float32", "float16", "uint8")
UINT8_SCALE = 1.0 / 255.0

#: the fix named when a file or array is not a probability map (shared by segment and evaluate --prob).
PROBABILITY_HINT = "pass the probability map written by `slicewise predict MODEL RAW probs.zarr`"

#: the fix named when a TIFF's channel axis cannot be told from its metadata.
TIFF_AXES_HINT = (
    "write it with its axes named (tifffile.imwrite(path, array, metadata={'axes': 'CZYX'}), or 'ZYXC' "
    "channel last, as slicewise predict writes), or save it as .h5 / .zarr (channel-first (C, Z, Y, X))"
)


# ------------------------------------------------------------------------------------------------
# Quantization
# ------------------------------------------------------------------------------------------------


def quantize(probs: np.ndarray, dtype: str) -> np.ndarray:
    """float32 probabilities → the store dtype: ``uint8`` = round(255·clip(p, 0, 1)), float16/float32 cast."""
    if dtype == "uint8":
        return np.rint(np.clip(probs, 0.0, 1.0) * np.float32(255.0)).astype(np.uint8)
    return probs.astype(np.dtype(dtype), copy=False)


def dequantize(q: np.ndarray, scale: float | None) -> np.ndarray:
    """Stored probabilities → float32 (``q·scale`` when quantized)."""
    return q.astype(np.float32) * np.float32(scale) if scale else np.asarray(q, dtype=np.float32)


# ------------------------------------------------------------------------------------------------
# Lazy views
# ------------------------------------------------------------------------------------------------


class _AddAxis(LazyView):
    """A lazy view of ``array`` with a new axis of length 1 at ``axis`` (0 or -1): reads only what is indexed."""

    def __init__(self, array: Any, axis: int = 0) -> None:
        self._array = array
        self._first = axis == 0
        shape = tuple(int(s) for s in array.shape)
        self.shape = (1, *shape) if self._first else (*shape, 1)
        self.dtype = np.dtype(array.dtype)

    def _read(self, key: Key) -> np.ndarray:
        new, inner = (key[0], key[1:]) if self._first else (key[-1], key[:-1])
        out = np.asarray(self._array[inner])
        if isinstance(new, slice):  # the new axis kept (length 1)
            out = out[np.newaxis] if self._first else out[..., np.newaxis]
        return out


class _Permuted(LazyView):
    """A lazy (C, Z, Y, X) view of an array stored with the axes ``order`` (letters of CZYX; a missing C or Z is
    a new axis of length 1): reads only what is indexed."""

    def __init__(self, array: Any, order: str) -> None:
        self._array, self._order = array, order
        sizes = dict(zip(order, (int(n) for n in array.shape)))
        self.shape = tuple(sizes.get(a, 1) for a in "CZYX")
        self.dtype = np.dtype(array.dtype)

    def _read(self, key: Key) -> np.ndarray:
        keys = dict(zip("CZYX", key))
        out = np.asarray(self._array[tuple(keys[a] for a in self._order)])
        kept = [a for a in self._order if isinstance(keys[a], slice)]
        for a in "CZYX":  # a missing axis: indexed by 0 (dropped) or a slice (a new axis of length 1)
            if a not in self._order and isinstance(keys[a], slice):
                out = out[..., np.newaxis]
                kept.append(a)
        target = [a for a in "CZYX" if a in kept]
        return np.transpose(out, [kept.index(a) for a in target])


class _ProbabilityView(LazyView):
    """A lazy float32 (C, Z, Y, X) view of stored probabilities: de-quantized (``scale``) and, for a channel-last
    array (Z×Y×X×C), moved channel-first when read.

    ``source_dtype`` is the stored dtype (what messages name); ``dtype`` is float32, what indexing returns."""

    what = "probability map"

    def __init__(self, array: Any, scale: float | None = None, channel_last: bool = False) -> None:
        self._array, self._scale, self._channel_last = array, scale, channel_last
        shape = tuple(int(s) for s in array.shape)
        self.shape = (shape[-1], *shape[:-1]) if channel_last else shape
        self.dtype = np.dtype(np.float32)
        self.source_dtype = np.dtype(getattr(array, "dtype", np.float32))

    def _read(self, key: Key) -> np.ndarray:
        if not self._channel_last:
            return dequantize(np.asarray(self._array[key]), self._scale)
        out = np.asarray(self._array[(*key[1:], key[0])])
        if isinstance(key[0], slice):
            out = np.moveaxis(out, -1, 0)
        return dequantize(out, self._scale)


def check_probability_dtype(dtype: Any, label: str) -> np.dtype:
    """``dtype`` as a numpy dtype, refused in one line (naming it) unless it holds real numbers (bool, integer,
    float): complex probabilities are refused, never silently made real."""
    dt = np.dtype(dtype)
    if dt.kind not in "biuf":
        raise InputError(f"{label} has dtype {dt}, not real probabilities in [0, 1]: {PROBABILITY_HINT}")
    return dt


def check_probability_values(
    probs: np.ndarray, label: str, source_dtype: Any, finite: np.ndarray | None = None
) -> np.ndarray:
    """``probs`` (read from the probability map ``label``, stored as ``source_dtype``), refused in one line unless
    finite and within [0, 1]; ``finite`` (e.g. a distance channel read with them) must only be finite. The one
    value check of probability inputs (``segment``, ``evaluate --prob``)."""
    if not (np.isfinite(probs).all() and (finite is None or np.isfinite(finite).all())):
        raise InputError(f"{label} holds NaN or Inf values, not probabilities in [0, 1]: {PROBABILITY_HINT}")
    if probs.size and (probs.min() < 0 or probs.max() > 1):
        raise InputError(
            f"{label} holds values in [{float(probs.min()):g}, {float(probs.max()):g}] ({source_dtype}), "
            f"not probabilities in [0, 1] (a raw image or logits?): {PROBABILITY_HINT}"
        )
    return probs


def probability_view(
    array: Any, label: str, scale: float | None = None, channel_last: bool = False
) -> _ProbabilityView:
    """The one reader of probability maps: a lazy float32 ``(C, Z, Y, X)`` view of a stored or in-memory array.

    Accepted: ``(C, Z, Y, X)`` (``Z×Y×X×C`` with ``channel_last``, as TIFF stores it); a ``(Z, Y, X)`` map
    (one channel); a ``(Y, X)`` map, taken as one slice ``(1, 1, Y, X)`` (decision: a 2-D map is a
    one-slice volume, so ``segment`` writes ``(1, Y, X)`` labels and ``evaluate --prob`` scores 2-D
    labels). Other ranks and dtypes that are not real numbers (complex, ...) are refused in one line
    naming the shape or dtype; values are checked when read (the probability input of :mod:`slicewise.segment`).
    """
    check_probability_dtype(array.dtype, label)
    ndim = len(array.shape)
    if ndim == 2:
        array = _AddAxis(array, axis=0)
    if ndim in (2, 3):
        array = _AddAxis(array, axis=-1 if channel_last else 0)
    elif ndim != 4:
        layout = "Z×Y×X×C" if channel_last else "(C, Z, Y, X)"
        raise InputError(
            f"{label} has shape {tuple(int(s) for s in array.shape)}, not probabilities {layout}, "
            f"(Z, Y, X) or (Y, X): {PROBABILITY_HINT}"
        )
    return _ProbabilityView(array, scale, channel_last=channel_last)


# ------------------------------------------------------------------------------------------------
# Metadata
# ------------------------------------------------------------------------------------------------


@dataclass
class Prediction:
    """A prediction output read back: ``probabilities`` lazy (C, Z, Y, X) float32 (de-quantized) or None,
    ``labels`` lazy (Z, Y, X) or None, ``channels`` names, ``voxel_size`` (z, y, x) nm or None, ``offset``
    (z, y, x) voxels of the output in the source volume. Index the arrays to read (``p.probabilities[1, 4]``);
    ``close()`` releases HDF5/TIFF handles."""

    probabilities: Any
    labels: Any
    channels: list[str]
    voxel_size: tuple[float, float, float] | None = None
    offset: tuple[int, int, int] = (0, 0, 0)
    attrs: dict[str, Any] = field(default_factory=dict)
    _closer: Any = field(default=None, repr=False)

    def close(self) -> None:
        if self._closer is not None:
            self._closer.close()
            self._closer = None

    def __enter__(self) -> Prediction:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _names(names: Any, n: int) -> list[str]:
    """``n`` channel names from a stored ``channels`` attribute (a list, or its JSON text); the fallback names of
    :func:`slicewise.data.io.formats.channel_name` when it is missing, unreadable or of another length."""
    if isinstance(names, (str, bytes)):
        try:
            names = json.loads(names)
        except ValueError:
            names = None
    return named_channels(list(names) if isinstance(names, (tuple, np.ndarray)) else names, n)


class _Quantization(MetadataModel):
    scale: PositiveFloat | None = None


class PredictionMeta(MetadataModel):
    """The ``slicewise`` attributes of a prediction store read back (untrusted: validated; unknown keys kept)."""

    voxel_size: tuple[PositiveFloat, PositiveFloat, PositiveFloat] | None = None
    offset: tuple[NonNegativeInt, NonNegativeInt, NonNegativeInt] | None = None
    quantisation: _Quantization | None = None
    channels: list[str] | None = None
    output_kind: Literal["probabilities", "labels", "both"] | None = None


def prediction_meta(raw: Any, source: str) -> dict[str, Any]:
    """The ``slicewise`` attributes of a prediction (a mapping or its JSON text; None → ``{}``) validated by
    :class:`PredictionMeta`: a bad field is one line naming the file and the field."""
    if raw is None or raw == "" or raw == b"":
        return {}
    if isinstance(raw, (str, bytes)):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise InputError(f"{source}: the 'slicewise' attribute is not JSON: re-run slicewise predict") from None
    data = parse_metadata(
        PredictionMeta,
        raw,
        source,
        "the prediction's metadata is damaged: re-run slicewise predict",
        prefix="slicewise",
    )
    return data.model_dump(exclude_none=True)


def _from_meta(meta: dict[str, Any]) -> tuple[Any, tuple[int, int, int], float | None]:
    vs = meta.get("voxel_size")
    q = meta.get("quantisation") or {}
    return (
        tuple(float(v) for v in vs) if vs else None,
        tuple(int(v) for v in meta.get("offset") or (0, 0, 0)),
        q.get("scale") if isinstance(q, dict) else None,
    )


# ------------------------------------------------------------------------------------------------
# Reading
# ------------------------------------------------------------------------------------------------


def read_prediction(path: str | os.PathLike, key: str | None = None) -> Prediction:
    """Read a prediction output of any layout slicewise writes (NGFF ``.zarr``, the older ``.zarr`` group with
    ``probabilities``/``labels`` arrays, HDF5, TIFF). ``key`` picks a dataset/array of a container holding
    something else. Probabilities come back as float32 (uint8 stores are de-quantized: ``q/255``) through
    :func:`probability_view` (a 2-D map is one slice; complex data and other ranks are refused in one line);
    a 2-D label map comes back as one slice (1, Y, X)."""
    p = check_input_path(path, "prediction")
    if not p.exists():
        raise InputError(f"prediction {p} does not exist: check the path")
    sfx = p.suffix.lower()
    if sfx in ZARR_SUFFIXES:
        return _read_zarr(p, key)
    if sfx in HDF5_SUFFIXES:
        return _read_hdf5(p, key)
    if sfx in TIFF_SUFFIXES:
        return _read_tiff(p)
    raise InputError(f"cannot read {p} as a prediction: use a .zarr, .h5 or .tif written by slicewise predict")


def read_prediction_probabilities(path: str | os.PathLike, key: str | None = None) -> Prediction:
    """:func:`read_prediction`, refused in one line unless the output holds probabilities (not integer data)."""
    pred = read_prediction(path, key)
    if pred.probabilities is None:
        dtype = getattr(pred.labels, "dtype", "integer")
        raise InputError(
            f"{path} holds integer data ({dtype}), not probabilities in [0, 1] (a raw image or labels?): "
            f"{PROBABILITY_HINT}"
        )
    return pred


def _read_zarr(p: Path, key: str | None) -> Prediction:
    import zarr

    try:
        node = zarr.open(str(p), mode="r")
    except Exception as err:  # noqa: BLE001 - zarr raises many types for a bad store
        raise InputError(f"cannot open {p} as Zarr ({type(err).__name__}): is it a complete Zarr store?") from None
    if not isinstance(node, zarr.Group):
        warn_missing_chunks(node, str(p))
        return _plain(node, None, {}, str(p))
    attrs = dict(node.attrs)
    meta = prediction_meta(attrs.get("slicewise"), f"{p} attributes")
    if key is not None:
        if key not in node:
            with zarr_listing():
                held = ", ".join(sorted(node.array_keys())) or "no arrays"
            raise InputError(f"{p} has no array {key!r}: it holds {held}")
        warn_missing_chunks(node[key], f"{p}:{key}", attrs)
        return _plain(node[key], attrs.get("channels"), meta, f"{p}:{key}")
    image = ngff.open_pyramid(p)  # validated NGFF metadata (v0.4 / v0.5), levels checked: one line if bad
    if image is not None:
        return _read_ngff(p, image, attrs, meta)
    if PROB_KEY in node or LABEL_KEY in node:
        return _read_arrays(p, node, attrs, meta)
    raise InputError(
        f"{p} holds no prediction (no NGFF image, no 'probabilities'/'labels' arrays): pass the array with key"
    )


def _read_ngff(p: Path, image: ngff.NGFFPyramid, attrs: dict[str, Any], meta: dict[str, Any]) -> Prediction:
    """An NGFF prediction: the root image (probabilities ``czyx`` / ``cyx``, or labels ``zyx`` / ``yx``) and the
    label image ``labels`` the image declares, when there is one."""
    vs, off, scale = _from_meta(meta)
    img, axes = image.arrays[0], "".join(image.axes)
    if vs is None:
        vs = image.voxel_size(0)
    label_folder = ngff.label_images(p).get(LABEL_KEY)
    label_image = ngff.open_pyramid(label_folder) if label_folder is not None else None
    labels = label_image.arrays[0] if label_image is not None else None
    warn_missing_chunks(img, str(p), attrs)
    if labels is not None:
        warn_missing_chunks(labels, f"{p}/labels/{LABEL_KEY}", attrs)
    if axes in ("czyx", "cyx"):
        names = meta.get("channels") or [c or channel_name(i) for i, c in enumerate(image.channel_labels)]
        return Prediction(probability_view(img, str(p), scale), labels, _names(names, img.shape[0]), vs, off, meta)
    if axes not in ("zyx", "yx"):
        raise InputError(
            f"{p} is an NGFF image with axes {axes!r}: a prediction has axes czyx (probabilities) or "
            f"zyx (labels); {PROBABILITY_HINT}"
        )
    return Prediction(None, labels if labels is not None else img, list(meta.get("channels") or []), vs, off, meta)


def _read_arrays(p: Path, node: Any, attrs: dict[str, Any], meta: dict[str, Any]) -> Prediction:
    """The older Zarr layout: a group with ``probabilities`` (C, Z, Y, X) and/or ``labels`` (Z, Y, X) arrays."""
    vs, off, scale = _from_meta(meta)
    for k in (PROB_KEY, LABEL_KEY):
        if k in node:
            warn_missing_chunks(node[k], f"{p}:{k}", attrs)
    probs = probability_view(node[PROB_KEY], str(p), scale) if PROB_KEY in node else None
    names = _names(attrs.get("channels"), probs.shape[0]) if probs is not None else list(attrs.get("channels") or [])
    return Prediction(probs, node[LABEL_KEY] if LABEL_KEY in node else None, names, vs, off, meta)


def _plain(arr: Any, names: Any, meta: dict[str, Any], label: str) -> Prediction:
    """One array: integer (Z, Y, X) or (Y, X) → labels (a 2-D map as one slice (1, Y, X)); anything else →
    probabilities through :func:`probability_view` (float (Z, Y, X) or (Y, X) → one channel)."""
    vs, off, scale = _from_meta(meta)
    if np.issubdtype(np.dtype(arr.dtype), np.integer) and len(arr.shape) in (2, 3) and not scale:
        return Prediction(None, arr if len(arr.shape) == 3 else _AddAxis(arr), [], vs, off, meta)
    probs = probability_view(arr, label, scale)
    return Prediction(probs, None, _names(names, probs.shape[0]), vs, off, meta)


def _hdf5_meta(p: Path, attrs: dict[str, Any]) -> dict[str, Any]:
    """The validated ``slicewise`` attributes of a prediction HDF5 file (``quantisation_scale`` folded in)."""
    meta_raw = attrs.get("slicewise") or attrs.get("slicewise_predict")
    meta = prediction_meta(meta_raw if isinstance(meta_raw, (str, bytes)) else None, f"{p} attributes")
    if "quantisation" not in meta and "quantisation_scale" in attrs:
        meta = prediction_meta({**meta, "quantisation": {"scale": attrs["quantisation_scale"]}}, f"{p} attributes")
    return meta


def _read_hdf5(p: Path, key: str | None) -> Prediction:
    import h5py

    try:
        f = h5py.File(p, "r")
    except OSError as err:
        raise InputError(f"cannot read {p} as HDF5 ({str(err).splitlines()[0]}): is the file complete?") from None
    try:
        pred = _hdf5_prediction(p, f, key)
    except InputError:
        f.close()
        raise
    pred._closer = f
    return pred


def _hdf5_prediction(p: Path, f: Any, key: str | None) -> Prediction:
    attrs = {k: f.attrs[k] for k in f.attrs}
    meta = _hdf5_meta(p, attrs)
    for k in (key,) if key is not None else (PROB_KEY, LABEL_KEY):
        check_contained(f, k, p)
    if key is not None:
        if key not in f:
            keys = ", ".join(sorted(f.keys()))
            raise InputError(f"{p} has no dataset {key!r}: it holds {keys or 'nothing'}")
        return _plain(f[key], attrs.get("channels"), meta, f"{p}:{key}")
    if PROB_KEY not in f and LABEL_KEY not in f:
        keys = ", ".join(sorted(f.keys()))
        raise InputError(
            f"{p} holds no 'probabilities' or 'labels' dataset (it has {keys or 'nothing'}): pass the dataset with key"
        )
    vs, off, scale = _from_meta(meta)
    probs = probability_view(f[PROB_KEY], str(p), scale) if PROB_KEY in f else None
    names = _names(attrs.get("channels"), probs.shape[0]) if probs is not None else []
    return Prediction(probs, f[LABEL_KEY] if LABEL_KEY in f else None, names, vs, off, meta)


def _check_axes_text(p: Path, text: str, origin: str, ndim: int) -> str | None:
    """The letters of CZYX that ``text`` (axes named by ``origin``) declares, None when it declares nothing (empty,
    or tifffile's unknown axes ``Q`` / ``I``); refused in one line when they do not describe the array."""
    letters = text.upper().replace("S", "C")
    if not text or "Q" in letters or "I" in letters:  # tifffile's "unknown" axes: nothing was declared
        return None
    if len(letters) != ndim or set(letters) - set("CZYX") or len(set(letters)) != len(letters) or "YX" not in letters:
        raise InputError(
            f"{p}: the axes {text!r} named by {origin} do not describe a {ndim}-d probability map "
            f"of C, Z, Y, X: {TIFF_AXES_HINT}"
        )
    return letters


def _tiff_axes(p: Path, md: dict[str, Any], series_axes: str, ndim: int) -> str | None:
    """The axes of a TIFF prediction, as letters of ``CZYX``, from the file's own metadata: the ``axes`` of the
    JSON description (slicewise writes ``ZYXS`` / ``ZYX``), else the axes an OME-TIFF / ImageJ file declares
    (never tifffile's guesses for a plain or shaped file, e.g. ``SYX`` for any 3-plane float stack); ``None``
    when the file names none (the documented convention applies to 2-D / 3-D maps; a 4-D array is refused:
    which axis holds the channels would be a guess)."""
    for text, origin in ((md.get("axes"), "its description"), (series_axes, "its OME / ImageJ metadata")):
        letters = _check_axes_text(p, text, origin, ndim) if isinstance(text, str) else None
        if letters is not None:
            return letters
    if ndim == 4:
        raise InputError(
            f"{p} is a 4-d TIFF without axes metadata: whether its channels come first (C, Z, Y, X) or "
            f"last (Z, Y, X, C) would be a guess: {TIFF_AXES_HINT}"
        )
    return None


def _open_tiff(p: Path) -> tuple[Any, dict[str, Any], str]:
    """(array, shaped-metadata description, axes declared by OME-XML / ImageJ) of a TIFF prediction: a memmap, or
    the data layer's lazy, checked reader for a compressed file."""
    import tifffile

    with tifffile_warnings() as problems:
        try:
            with tifffile.TiffFile(p) as tif:
                md = (tif.shaped_metadata or [{}])[0] or {}
                series = tif.series[0] if tif.series else None  # axes declared by OME-XML / ImageJ, not guessed
                series_axes = (
                    str(series.axes) if series is not None and series.kind.lower() in ("ome", "imagej") else ""
                )
            try:
                arr: Any = tifffile.memmap(p, mode="r")
            except ValueError:  # compressed / not memory-mappable: the data layer's lazy, checked reader
                arr = open_volume(p)  # refuses axes other than Z×Y×X(×C) in one line
                md, series_axes = {**md, "axes": "ZYXC" if arr.ndim == 4 else "ZYX"[-arr.ndim :]}, ""
        except (tifffile.TiffFileError, OSError, ValueError, KeyError, IndexError) as err:
            raise damaged(p, err) from None
    if problems:
        raise damaged(p, RuntimeError(problems[0]))
    return arr, md, series_axes


def _read_tiff(p: Path) -> Prediction:
    arr, md, series_axes = _open_tiff(p)
    meta = prediction_meta(md.get("slicewise"), f"{p} description")
    if "voxel_size" not in meta and md.get("voxel_size"):
        meta = prediction_meta({**meta, "voxel_size": md["voxel_size"]}, f"{p} description")
    vs, off, scale = _from_meta(meta)
    kind = meta.get("output_kind")
    axes = _tiff_axes(p, md, series_axes, arr.ndim)
    if "C" in (axes or "") or kind == "probabilities" or (kind is None and not np.issubdtype(arr.dtype, np.integer)):
        view = _Permuted(arr, axes) if axes not in (None, "ZYX", "YX") else arr
        probs = probability_view(view, str(p), scale)
        return Prediction(probs, None, _names(meta.get("channels"), probs.shape[0]), vs, off, meta)
    return Prediction(None, arr if arr.ndim != 2 else _AddAxis(arr), list(meta.get("channels") or []), vs, off, meta)
