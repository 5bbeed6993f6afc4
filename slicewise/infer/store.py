"""Storage of block-wise outputs, apart from computation (as MONAI separates its inferer from its mergers).

Two layers:

- :func:`create_array_store` — one block-writable array (``store[region] = block``) in a ``.zarr``
  (Zarr format 2), ``.h5/.hdf5/.hdf`` (dataset ``key``) or ``.tif/.tiff`` (uncompressed, through
  ``tifffile.memmap``), written to a temporary sibling and renamed onto the output by ``finalize()``.
- :class:`PredictionWriter` — a prediction output (probabilities and/or labels) written block by
  block, resumable: the partial output is a hidden sibling ``.<stem>.partial<suffix>`` and its state
  folder ``.<stem>.partial<suffix>.state/`` holds ``state.json`` (plan, model hash, input identity) and
  one empty file per finished block under ``done/`` (so parallel workers never write the same file).
  Backends: OME-Zarr (``.zarr``; the NGFF layout of docs/ARCHITECTURE.md, "Prediction store layout":
  level 0 written by blocks, then the pyramid and metadata through :mod:`slicewise.data.ome_zarr`),
  HDF5 (datasets ``probabilities`` (C, Z, Y, X) and ``labels`` (Z, Y, X), region writes) and TIFF (one
  array: probabilities channel-last Z×Y×X×C, or labels Z×Y×X; a memmap of the final shape).

Prediction stores are created here with zarr / h5py / tifffile directly (OME-Zarr groups, resumable
partials, quantisation attributes), not through :func:`slicewise.data.io.create_zarr`, which makes the
plain single-array Zarr that :func:`slicewise.data.io.write_volume` fills.

Every store claims its output (:func:`slicewise.utils.atomic.claim_output`) and checks it
(:func:`slicewise.utils.atomic.check_output_path`) when created, before any computing, so a second
writer to the same output is refused in one line and an unwritable location fails at once.

Probability dtypes: ``float32`` (exact), ``float16`` (|Δp| ≤ 2⁻¹¹ ≈ 4.9e-4 for p in [0, 1]) or ``uint8``
= round(255·p) with the attribute ``quantisation = {"scale": 1/255}``; :func:`read_prediction` returns
``q·scale`` as float32, so the error is |Δp| ≤ 1/510 ≈ 0.00196 (half a quantisation step). ``uint8`` is
only offered for channels that are probabilities (``seg`` softmax, ``boundary`` sigmoid); a raw head
(``distance``) needs float16/float32.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import NonNegativeInt, PositiveFloat

from slicewise.data import ome_zarr
from slicewise.data.io.readers.hdf5 import check_contained
from slicewise.data.io.readers.zarr_store import warn_missing_chunks
from slicewise.errors import InputError
from slicewise.infer.blocks import Block, Plan, plan_blocks
from slicewise.utils.atomic import (
    check_free_space,
    check_output_path,
    claim_output,
    publish,
    remove_path,
    reserve_space,
    stamp_folder,
    temp_sibling,
    write_guard,
    write_json,
)
from slicewise.utils.identity import check_identity
from slicewise.utils.inputs import check_input_path
from slicewise.utils.validation import MetadataModel, parse_metadata

log = logging.getLogger(__name__)

ZARR_SUFFIXES = (".zarr",)
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf")
TIFF_SUFFIXES = (".tif", ".tiff")
OUTPUT_SUFFIXES = ZARR_SUFFIXES + HDF5_SUFFIXES + TIFF_SUFFIXES
PROB_KEY, LABEL_KEY = "probabilities", "labels"
PROB_DTYPES: tuple[str, ...] = ("float32", "float16", "uint8")
UINT8_SCALE = 1.0 / 255.0
STATE_VERSION = 1

__all__ = [
    "ArrayStore",
    "Prediction",
    "PredictionWriter",
    "create_array_store",
    "dequantise",
    "labels_from",
    "open_prediction_writer",
    "partial_path",
    "quantise",
    "read_prediction",
    "state_path",
]


def _suffix(path: Path) -> str:
    return path.suffix.lower()


def check_output_kind(path: str | os.PathLike, output_kind: str) -> Path:
    """Raise a one-line error for an unknown extension or a TIFF asked to hold two arrays."""
    p = Path(path)
    if _suffix(p) not in OUTPUT_SUFFIXES:
        raise InputError(f"output {p} has an unknown extension: use .zarr, .h5/.hdf5 or .tif")
    if _suffix(p) in TIFF_SUFFIXES and output_kind == "both":
        raise InputError("a TIFF holds one array: choose probabilities or labels, or write .zarr / .h5 for both")
    return p


def partial_path(output: str | os.PathLike) -> Path:
    """The hidden sibling a resumable prediction writes into: ``.<stem>.partial<suffix>``."""
    out = Path(output)
    return out.with_name(f".{out.stem}.partial{out.suffix}")


def state_path(partial: str | os.PathLike) -> Path:
    """The state folder of a partial output: ``<partial>.state`` (``state.json`` and ``done/<i>``)."""
    p = Path(partial)
    return p.with_name(p.name + ".state")


# ------------------------------------------------------------------------------------------------
# Quantisation
# ------------------------------------------------------------------------------------------------


def quantise(probs: np.ndarray, dtype: str) -> np.ndarray:
    """float32 probabilities → the store dtype: ``uint8`` = round(255·clip(p, 0, 1)), float16/float32 cast."""
    if dtype == "uint8":
        return np.rint(np.clip(probs, 0.0, 1.0) * np.float32(255.0)).astype(np.uint8)
    return probs.astype(np.dtype(dtype), copy=False)


def dequantise(q: np.ndarray, scale: float | None) -> np.ndarray:
    """Stored probabilities → float32 (``q·scale`` when quantised)."""
    return q.astype(np.float32) * np.float32(scale) if scale else np.asarray(q, dtype=np.float32)


def labels_from(probs: np.ndarray, plan: Plan) -> np.ndarray:
    """Argmax over the seg channels of ``(C, …)`` float probabilities → uint8 (uint16 beyond 256 classes)."""
    start, stop = next((a, b) for name, a, b in plan.heads if name == "seg")
    return np.argmax(probs[start:stop], axis=0).astype(label_dtype(plan))


def label_dtype(plan: Plan) -> np.dtype:
    return np.dtype(np.uint8 if plan.n_classes <= 256 else np.uint16)


# ------------------------------------------------------------------------------------------------
# Generic block-writable arrays
# ------------------------------------------------------------------------------------------------


class ArrayStore(ABC):
    """A block-writable array at a temporary sibling of ``path``; ``finalize()`` publishes it."""

    def __init__(
        self, path: Path, tmp: Path, shape: tuple[int, ...], dtype: np.dtype, claim: contextlib.ExitStack
    ) -> None:
        self.path, self.tmp, self.shape, self.dtype = path, tmp, shape, dtype
        self._claim = claim

    @property
    def nbytes(self) -> int:
        """The uncompressed size of the array in bytes."""
        return int(np.prod(self.shape)) * self.dtype.itemsize

    def __setitem__(self, region: Any, block: np.ndarray) -> None:
        with write_guard(self.path, self.nbytes):  # a full disk: one line, the temporary sibling is deleted by abort()
            self._set(region, block)

    @abstractmethod
    def _set(self, region: Any, block: np.ndarray) -> None: ...

    @abstractmethod
    def __getitem__(self, region: Any) -> np.ndarray: ...

    @abstractmethod
    def _close(self) -> None: ...

    def finalize(self) -> Path:
        """Close, rename the temporary sibling onto ``path`` and release the claim."""
        try:
            with write_guard(self.path, self.nbytes):
                self._close()
                return publish(self.tmp, self.path)
        finally:
            self._claim.close()

    def abort(self) -> None:
        """Close, delete the temporary sibling and release the claim (the output is left untouched)."""
        try:
            self._close()
            remove_path(self.tmp)
        finally:
            self._claim.close()

    def __enter__(self) -> ArrayStore:
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is not None:
            self.abort()


class _ZarrArrayStore(ArrayStore):
    def __init__(self, *args: Any, array: Any) -> None:
        super().__init__(*args)
        self.array = array

    def _set(self, region: Any, block: np.ndarray) -> None:
        self.array[region] = block

    def __getitem__(self, region: Any) -> np.ndarray:
        return np.asarray(self.array[region])

    def _close(self) -> None:
        pass


class _H5ArrayStore(ArrayStore):
    def __init__(self, *args: Any, file: Any, key: str) -> None:
        super().__init__(*args)
        self.file, self.key = file, key

    def _set(self, region: Any, block: np.ndarray) -> None:
        self.file[self.key][region] = block

    def __getitem__(self, region: Any) -> np.ndarray:
        return np.asarray(self.file[self.key][region])

    def _close(self) -> None:
        if self.file:
            self.file.close()


class _TiffArrayStore(ArrayStore):
    def __init__(self, *args: Any, memmap: Any) -> None:
        super().__init__(*args)
        self.memmap = memmap

    def _set(self, region: Any, block: np.ndarray) -> None:
        self.memmap[region] = block

    def __getitem__(self, region: Any) -> np.ndarray:
        return np.array(self.memmap[region])

    def _close(self) -> None:
        if self.memmap is not None:
            self.memmap.flush()
            self.memmap = None


def _zarr_attrs(attrs: dict[str, Any] | None) -> dict[str, Any]:
    return json.loads(json.dumps(attrs or {}, default=str))


def _h5_attr(v: Any) -> Any:
    return v if isinstance(v, (int, float, str, bool, np.generic)) else json.dumps(v, default=str)


def create_array_store(
    path: str | os.PathLike,
    shape: Sequence[int],
    dtype: Any,
    *,
    chunks: Sequence[int] | None = None,
    key: str | None = None,
    attrs: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> ArrayStore:
    """A block-writable array for ``path`` (by suffix: ``.zarr`` Zarr-v2 array, or group with array ``key``;
    ``.h5/.hdf5/.hdf`` dataset ``key`` (default ``data``); ``.tif/.tiff`` uncompressed memmap, one array).

    The output is checked (exists / writable, one-line errors) and claimed at creation, then written at a
    temporary sibling; ``finalize()`` renames it onto ``path``, ``abort()`` deletes it. ``attrs``: JSON-ready
    attributes (HDF5: non-scalars as JSON strings; TIFF: in the shaped-metadata description).
    """
    final = check_output_path(path, overwrite=overwrite)
    sfx = _suffix(final)
    if sfx not in OUTPUT_SUFFIXES:
        raise InputError(f"output {final} has an unknown extension: use .zarr, .h5/.hdf5 or .tif")
    shape_t = tuple(int(s) for s in shape)
    dt = np.dtype(dtype)
    chunks_t = tuple(int(min(c, s)) for c, s in zip(chunks, shape_t)) if chunks else None
    nbytes = int(np.prod(shape_t)) * dt.itemsize
    check_free_space(final, nbytes)  # block-wise work knows its size: refuse before computing
    claim = contextlib.ExitStack()
    claim.enter_context(claim_output(final))
    tmp = temp_sibling(final)
    try:
        if sfx in ZARR_SUFFIXES:
            import zarr

            kw: dict[str, Any] = dict(
                shape=shape_t, chunks=chunks_t or shape_t, dtype=dt, fill_value=0, config={"write_empty_chunks": True}
            )  # every chunk stored: loss detectable
            if key:
                group = zarr.open_group(str(tmp), mode="w", zarr_format=2)
                arr = group.create_array(key, **kw)
                group.attrs.update(_zarr_attrs(attrs))
            else:
                arr = zarr.create_array(store=str(tmp), zarr_format=2, **kw)
                arr.attrs.update(_zarr_attrs(attrs))
            return _ZarrArrayStore(final, tmp, shape_t, dt, claim, array=arr)
        if sfx in HDF5_SUFFIXES:
            import h5py

            f = h5py.File(tmp, "w")
            k = key or "data"
            ds = f.create_dataset(k, shape=shape_t, dtype=dt, chunks=chunks_t or True)
            for name, v in (attrs or {}).items():
                ds.attrs[name] = _h5_attr(v)
            f.flush()
            store = _H5ArrayStore(final, tmp, shape_t, dt, claim, file=f, key=k)
            _reserve_or_close(tmp, nbytes + _H5_OVERHEAD, final, f.close)  # HDF5 never meets a full disk mid-write
            return store
        import tifffile

        meta = {"axes": "ZYXS" if len(shape_t) == 4 else "ZYX"[-len(shape_t) :], **(attrs or {})}
        mm = tifffile.memmap(
            tmp,
            shape=shape_t,
            dtype=dt,
            photometric="minisblack",
            planarconfig="contig" if len(shape_t) == 4 else None,
            metadata=_zarr_attrs(meta),
            bigtiff=int(np.prod(shape_t)) * dt.itemsize > 2**31,
        )
        _reserve_or_close(tmp, os.path.getsize(tmp), final, lambda: None)  # no page of the map is written yet
        return _TiffArrayStore(final, tmp, shape_t, dt, claim, memmap=mm)
    except BaseException:
        remove_path(tmp)
        claim.close()
        raise


_H5_OVERHEAD = 2**16  # HDF5 metadata and chunk index, reserved on top of the data


def _reserve_or_close(path: Path, nbytes: int, output: Path, close: Any) -> None:
    """Allocate ``nbytes`` of the memory-mapped / library-written file ``path`` now (:func:`reserve_space`), so a full
    disk is a one-line error here, never a SIGBUS or a crash later; on failure ``close()`` the open handle first."""
    try:
        reserve_space(path, nbytes, output)
    except BaseException:
        close()
        raise


# ------------------------------------------------------------------------------------------------
# Prediction writers
# ------------------------------------------------------------------------------------------------


class PredictionWriter(ABC):
    """A prediction output written block by block (see the module docstring for layouts and resume).

    ``write_block(block, probs)`` takes the block's float32 probabilities (C, bz, by, bx); labels
    (argmax over the seg classes) are derived from them when the output kind asks for labels, and the
    probabilities are quantised to the store dtype. ``mark_done(i)`` records a finished block (after its
    data is flushed), ``done()`` lists them, ``finalize()`` publishes the output, ``abort()`` releases it.
    """

    backend = ""

    def __init__(
        self, output: Path, partial: Path, plan: Plan, state: dict[str, Any], claim: contextlib.ExitStack | None
    ) -> None:
        self.output, self.partial, self.plan, self.state = output, partial, plan, state
        self._claim = claim
        self._done_dir = state_path(partial) / "done"

    # -- backend hooks ----------------------------------------------------------------------
    @abstractmethod
    def _create(self) -> None:
        """Create the empty partial store."""

    @abstractmethod
    def _open(self) -> None:
        """Open an existing partial store for writing (raise OSError/ValueError/KeyError if unusable)."""

    @abstractmethod
    def _write(self, local: tuple[slice, slice, slice], probs: np.ndarray | None, labels: np.ndarray | None) -> None:
        """Write the block's stored probabilities / labels at ``local`` (output coordinates) and flush."""

    @abstractmethod
    def _close(self) -> None:
        """Release file handles."""

    def _complete(self) -> None:  # noqa: B027 - an optional hook, not abstract: most backends have nothing to finish
        """Backend-specific finishing (pyramids, metadata) before the rename; default none."""

    # -- public API -------------------------------------------------------------------------
    @property
    def n_blocks(self) -> int:
        return len(plan_blocks(self.plan.shape[:3], self.plan.block, self.plan.roi_slices))

    @property
    def nbytes(self) -> int:
        """The uncompressed size of the finished output in bytes (probabilities and labels)."""
        z, y, x = self.plan.out_shape
        total = 0
        if self.plan.output_kind != "labels":
            total += self.plan.out_channels * z * y * x * np.dtype(self.plan.dtype).itemsize
        if self.plan.output_kind != "probabilities":
            total += z * y * x * label_dtype(self.plan).itemsize
        return total

    @property
    def quant_scale(self) -> float | None:
        return UINT8_SCALE if self.plan.dtype == "uint8" else None

    def attrs(self) -> dict[str, Any]:
        """The ``slicewise`` attributes recorded in the output."""
        return {
            "channels": list(self.plan.channel_names),
            "predict": self.plan.fingerprint(),
            "dtype": self.plan.dtype,
            "quantisation": {"scale": self.quant_scale} if self.quant_scale else None,
            "offset": list(self.plan.offset),
            "voxel_size": self.state.get("voxel_size"),
            "input": self.state.get("identity"),
            "output_kind": self.plan.output_kind,
            "environment": self.state.get("environment"),
        }

    def write_block(self, block: Block, probs: np.ndarray) -> None:
        kind = self.plan.output_kind
        labels = labels_from(probs, self.plan) if kind != "probabilities" else None
        stored = quantise(probs, self.plan.dtype) if kind != "labels" else None
        with write_guard(self.output, self.nbytes):  # a full disk: one line; the partial output stays resumable
            self._write(block.local(self.plan.offset), stored, labels)

    def mark_done(self, index: int) -> None:
        with write_guard(self.output, self.nbytes):
            self._done_dir.mkdir(parents=True, exist_ok=True)
            (self._done_dir / str(int(index))).touch()

    def done(self) -> set[int]:
        if not self._done_dir.is_dir():
            return set()
        return {int(p.name) for p in self._done_dir.iterdir() if p.name.isdigit()}

    def finalize(self) -> Path:
        """All blocks done → finish the store, rename it onto the output, drop the state; the claim is released
        in any case (an incomplete output is a one-line error and stays resumable)."""
        try:
            missing = self.n_blocks - len(self.done())
            if missing:
                raise InputError(
                    f"prediction into {self.partial} is incomplete ({missing} blocks missing): rerun the same command to resume"
                )
            with write_guard(self.output, self.nbytes):  # pyramids, metadata: a full disk keeps the resumable partial
                self._close()
                self._complete()
                if self.partial.is_dir():
                    stamp_folder(self.partial)  # a folder output: slicewise's own, replaceable by a later --overwrite
                publish(self.partial, self.output)
            remove_path(state_path(self.partial))
            return self.output
        finally:
            self._release()

    def abort(self, keep: bool = True) -> None:
        """Close and release the claim; ``keep`` leaves the partial output for a later resume, else it is deleted."""
        try:
            self._close()
            if not keep:
                remove_path(self.partial)
                remove_path(state_path(self.partial))
        finally:
            self._release()

    def _release(self) -> None:
        if self._claim is not None:
            self._claim.close()
            self._claim = None

    @classmethod
    def reopen(cls, partial: str | os.PathLike) -> PredictionWriter:
        """Re-open a partial output (e.g. in a dask worker) from its state; the claim stays with the creator."""
        p = Path(partial)
        state = _read_state(p)
        if state is None:
            raise InputError(f"{p} is not a partial slicewise prediction (no readable {state_path(p) / 'state.json'})")
        writer = _WRITERS[_backend_of(Path(state["output"]))](
            Path(state["output"]), p, Plan.from_json(state["plan"]), state, None
        )
        writer._open()
        return writer


def _read_state(partial: Path) -> dict[str, Any] | None:
    """The recorded state of a partial output, or None when missing, unreadable or malformed (a state that cannot be
    trusted is never resumed from: the run starts afresh)."""
    try:
        state = json.loads((state_path(partial) / "state.json").read_text())
        if not isinstance(state, dict) or not isinstance(state.get("plan"), dict):
            return None
        Plan.from_json(state["plan"]).fingerprint()
        identity = state.get("identity")
        return state if identity is None or isinstance(identity, dict) else None
    except (OSError, ValueError, TypeError, KeyError):
        return None


def _backend_of(path: Path) -> str:
    sfx = _suffix(path)
    return "zarr" if sfx in ZARR_SUFFIXES else "hdf5" if sfx in HDF5_SUFFIXES else "tiff"


def chunk_for(block: int, cap: int) -> int:
    """A chunk length that divides ``block`` (so no chunk is shared by two blocks and parallel writers never
    touch the same file) and is at most ``cap`` when a divisor ≥ cap/4 exists, else the block length itself."""
    if block <= cap:
        return block
    best = max(d for d in range(1, cap + 1) if block % d == 0)
    return best if best * 4 >= cap else block


ZARR_CHUNK_CAP = (16, 256, 256)


class ZarrPredictionWriter(PredictionWriter):
    """OME-Zarr (NGFF v0.4, Zarr format 2): probabilities (C, Z, Y, X) as the image ``0``, labels as the label
    image ``labels/labels/0`` (and as the root image when only labels are written). Chunks divide the block
    shape (:func:`chunk_for`: at most 16×256×256 when possible, viewer-friendly), so every chunk file belongs
    to exactly one block."""

    backend = "zarr"

    def _group(self, mode: str) -> Any:
        import zarr

        return zarr.open_group(str(self.partial), mode=mode, zarr_format=2)

    def _create(self) -> None:
        plan = self.plan
        root = self._group("w")
        z, y, x = plan.out_shape
        cz, cy, cx = (chunk_for(min(b, s), cap) for b, s, cap in zip(plan.block, plan.out_shape, ZARR_CHUNK_CAP))
        if plan.output_kind != "labels":
            root.create_array(
                "0", shape=(plan.out_channels, z, y, x), chunks=(1, cz, cy, cx), dtype=plan.dtype, fill_value=0
            )
        if plan.output_kind != "probabilities":
            lab = root.require_group("labels").require_group("labels")
            lab.create_array("0", shape=(z, y, x), chunks=(cz, cy, cx), dtype=label_dtype(plan), fill_value=0)
            if plan.output_kind == "labels":
                root.create_array("0", shape=(z, y, x), chunks=(cz, cy, cx), dtype=label_dtype(plan), fill_value=0)
        self._root = root
        self._handles()

    def _open(self) -> None:
        root = self._group("r+")
        if "0" not in root:
            raise KeyError("0")
        self._root = root
        self._handles()

    def _handles(self) -> None:
        """Array handles that store every chunk, also one equal to the fill value (zarr skips those by default):
        a complete store, so that a missing chunk file is detected as lost (``warn_missing_chunks``)."""
        import zarr

        with zarr.config.set({"array.write_empty_chunks": True}):
            self._image = self._root["0"]
            has_labels = "labels" in self._root and "labels" in self._root["labels"]
            self._labels = self._root["labels"]["labels"]["0"] if has_labels else None

    def _write(self, local: tuple[slice, slice, slice], probs: np.ndarray | None, labels: np.ndarray | None) -> None:
        if probs is not None:
            self._image[(slice(None), *local)] = probs
        if labels is not None:
            self._labels[local] = labels
            if probs is None:
                self._image[local] = labels

    def _close(self) -> None:
        pass

    def _complete(self) -> None:
        from slicewise.data import ome_zarr

        plan, root = self.plan, self._group("r+")
        vs = self.state.get("voxel_size")
        name = Path(self.output).stem
        if plan.output_kind == "labels":
            n = ome_zarr.build_pyramid(root, method="mode")
            ome_zarr.write_image_metadata(
                root, axes=("z", "y", "x"), voxel_size=vs, n_levels=n, name=name, method="mode", offset_zyx=plan.offset
            )
        else:
            n = ome_zarr.build_pyramid(root, method="mean")
            ome_zarr.write_image_metadata(
                root,
                axes=("c", "z", "y", "x"),
                voxel_size=vs,
                n_levels=n,
                channel_names=list(plan.channel_names),
                name=name,
                offset_zyx=plan.offset,
            )
        if plan.output_kind != "probabilities":
            m = ome_zarr.build_pyramid(root["labels"]["labels"], method="mode")
            ome_zarr.write_labels_metadata(root, "labels", voxel_size=vs, n_levels=m, offset_zyx=plan.offset)
        root.attrs["slicewise"] = _zarr_attrs(self.attrs())


class HDF5PredictionWriter(PredictionWriter):
    """HDF5: datasets ``probabilities`` (C, Z, Y, X) and/or ``labels`` (Z, Y, X), written by region; attributes
    ``channels`` and ``slicewise`` (JSON strings), ``quantisation_scale`` when quantised."""

    backend = "hdf5"

    def _chunks(self) -> tuple[int, int, int]:
        return tuple(min(b, s, c) for b, s, c in zip(self.plan.block, self.plan.out_shape, (16, 256, 256)))  # type: ignore[return-value]

    def _create(self) -> None:
        import h5py

        plan = self.plan
        f = h5py.File(self.partial, "w")
        cz, cy, cx = self._chunks()
        if plan.output_kind != "labels":
            f.create_dataset(
                PROB_KEY, shape=(plan.out_channels, *plan.out_shape), dtype=plan.dtype, chunks=(1, cz, cy, cx)
            )
        if plan.output_kind != "probabilities":
            f.create_dataset(LABEL_KEY, shape=plan.out_shape, dtype=label_dtype(plan), chunks=(cz, cy, cx))
        f.attrs["channels"] = json.dumps(list(plan.channel_names))
        f.attrs["slicewise"] = json.dumps(self.attrs(), default=str)
        if self.quant_scale:
            f.attrs["quantisation_scale"] = self.quant_scale
        f.flush()
        self._file = f
        _reserve_or_close(self.partial, self.nbytes + _H5_OVERHEAD, self.output, f.close)

    def _open(self) -> None:
        import h5py

        f = h5py.File(self.partial, "r+")
        want = [
            k
            for k, on in (
                (PROB_KEY, self.plan.output_kind != "labels"),
                (LABEL_KEY, self.plan.output_kind != "probabilities"),
            )
            if on
        ]
        if any(k not in f for k in want):
            f.close()
            raise KeyError(want)
        self._file = f

    def _write(self, local: tuple[slice, slice, slice], probs: np.ndarray | None, labels: np.ndarray | None) -> None:
        if probs is not None:
            self._file[PROB_KEY][(slice(None), *local)] = probs
        if labels is not None:
            self._file[LABEL_KEY][local] = labels
        self._file.flush()

    def _close(self) -> None:
        f = getattr(self, "_file", None)
        if f:
            f.close()
        self._file = None


class TiffPredictionWriter(PredictionWriter):
    """TIFF: one uncompressed array through ``tifffile.memmap`` of the final shape — probabilities channel-last
    Z×Y×X×C (the data layer's volume layout) or labels Z×Y×X; the ``slicewise`` attributes in the
    shaped-metadata description."""

    backend = "tiff"

    def _shape(self) -> tuple[int, ...]:
        z, y, x = self.plan.out_shape
        return (z, y, x, self.plan.out_channels) if self.plan.output_kind == "probabilities" else (z, y, x)

    def _create(self) -> None:
        import tifffile

        shape = self._shape()
        dtype = np.dtype(self.plan.dtype) if self.plan.output_kind == "probabilities" else label_dtype(self.plan)
        meta = {"axes": "ZYXS" if len(shape) == 4 else "ZYX", "slicewise": _zarr_attrs(self.attrs())}
        if self.state.get("voxel_size"):
            meta["voxel_size"] = list(self.state["voxel_size"])
        self._mm = tifffile.memmap(
            self.partial,
            shape=shape,
            dtype=dtype,
            photometric="minisblack",
            planarconfig="contig" if len(shape) == 4 else None,
            metadata=meta,
            bigtiff=int(np.prod(shape)) * dtype.itemsize > 2**31,
        )
        _reserve_or_close(self.partial, os.path.getsize(self.partial), self.output, self._close)

    def _open(self) -> None:
        import tifffile

        mm = tifffile.memmap(self.partial, mode="r+")
        if tuple(mm.shape) != self._shape():
            raise ValueError("shape")
        self._mm = mm

    def _write(self, local: tuple[slice, slice, slice], probs: np.ndarray | None, labels: np.ndarray | None) -> None:
        self._mm[local] = np.moveaxis(probs, 0, -1) if probs is not None else labels
        self._mm.flush()

    def _close(self) -> None:
        mm = getattr(self, "_mm", None)
        if mm is not None:
            mm.flush()
            del mm
        self._mm = None


_WRITERS: dict[str, type[PredictionWriter]] = {
    "zarr": ZarrPredictionWriter,
    "hdf5": HDF5PredictionWriter,
    "tiff": TiffPredictionWriter,
}


def open_prediction_writer(
    path: str | os.PathLike,
    plan: Plan,
    *,
    dtype: str | None = None,
    resume: bool = True,
    overwrite: bool = False,
    identity: dict[str, Any] | None = None,
    voxel_size: Sequence[float] | None = None,
    environment: dict[str, Any] | None = None,
) -> PredictionWriter:
    """Create (or resume) the writer for output ``path``.

    Checks the output (``check_output_path``) and claims it (``claim_output``) first. A partial output from
    an interrupted run is resumed when ``resume`` and not ``overwrite`` and its recorded plan fingerprint
    (settings, model hash, dtype) equals ``plan``'s; its recorded input ``identity`` must then match the
    current one, else a one-line :class:`InputError`. A partial output with other settings, or an unreadable
    one, is discarded and the run starts afresh. ``dtype`` (default ``plan.dtype``) overrides the plan's.
    ``environment`` (:func:`slicewise.utils.environment.environment_info`) is recorded in the output's
    ``slicewise`` attributes (a resumed output keeps the one of the run that began it).
    """
    final = check_output_kind(path, plan.output_kind)
    if dtype is not None and dtype != plan.dtype:
        from dataclasses import replace

        plan = replace(plan, dtype=dtype)
    if plan.dtype not in PROB_DTYPES:
        raise InputError(f"probability dtype {plan.dtype!r} is unknown: use one of {', '.join(PROB_DTYPES)}")
    final = check_output_path(final, overwrite=overwrite)
    claim = contextlib.ExitStack()
    claim.enter_context(claim_output(final))
    try:
        part = partial_path(final)
        cls = _WRITERS[_backend_of(final)]
        state = {
            "version": STATE_VERSION,
            "output": str(final.absolute()),
            "plan": plan.to_json(),
            "identity": identity,
            "voxel_size": [float(v) for v in voxel_size] if voxel_size else None,
            "environment": environment,
        }
        old = _read_state(part) if (part.exists() or state_path(part).exists()) else None
        if (
            old is not None
            and resume
            and not overwrite
            and old.get("version") == STATE_VERSION
            and Plan.from_json(old["plan"]).fingerprint() == plan.fingerprint()
        ):
            check_identity(old.get("identity"), identity or {})
            writer = cls(final, part, plan, {**old, "plan": plan.to_json()}, claim)
            try:
                writer._open()
                log.info("resuming %s: %d of %d blocks done", final, len(writer.done()), writer.n_blocks)
                return writer
            except (OSError, ValueError, KeyError):
                log.warning("partial output %s is unreadable: starting afresh", part)
        elif old is not None or part.exists():
            log.info("discarding partial output %s (other settings, or --overwrite): starting afresh", part)
        remove_path(part)
        remove_path(state_path(part))
        writer = cls(final, part, plan, state, claim)
        check_free_space(final, writer.nbytes)  # before any block is computed (a resumed store holds its space)
        with write_guard(final, writer.nbytes):
            writer._create()
        sp = state_path(part)
        sp.mkdir(parents=True, exist_ok=True)
        write_json(sp / "state.json", state, overwrite=True, indent=None)
        return writer
    except BaseException:
        claim.close()
        raise


# ------------------------------------------------------------------------------------------------
# Reading
# ------------------------------------------------------------------------------------------------


#: the fix named when a file or array is not a probability map (shared by segment and evaluate --prob).
PROBABILITY_HINT = "pass the probability map written by `slicewise predict MODEL RAW probs.zarr`"


class _Lazy:
    """A lazy array view: ``shape``/``dtype`` known, data read and converted on indexing.

    ``source_dtype`` is the stored dtype (what messages name); ``dtype`` is float32, what indexing returns."""

    def __init__(self, array: Any, scale: float | None = None, channel_last: bool = False) -> None:
        self._array, self._scale, self._cl = array, scale, channel_last
        shape = tuple(int(s) for s in array.shape)
        self.shape = (shape[-1], *shape[:-1]) if channel_last else shape
        self.dtype = np.dtype(np.float32)
        self.source_dtype = np.dtype(getattr(array, "dtype", np.float32))
        self.ndim = len(self.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        if self._cl:
            key = key if isinstance(key, tuple) else (key,)
            if any(k is Ellipsis for k in key):
                i = key.index(Ellipsis)
                key = key[:i] + (slice(None),) * (self.ndim - len(key) + 1) + key[i + 1 :]
            key = tuple(key) + (slice(None),) * (self.ndim - len(key))
            out = np.asarray(self._array[(*key[1:], key[0])])
            if not isinstance(key[0], (int, np.integer)):
                out = np.moveaxis(out, -1, 0)
        else:
            out = np.asarray(self._array[key])
        return dequantise(out, self._scale)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        a = self[...]
        return a.astype(dtype, copy=False) if dtype is not None else a

    def __len__(self) -> int:
        return self.shape[0]


def check_probability_dtype(dtype: Any, label: str) -> np.dtype:
    """``dtype`` as a numpy dtype, refused in one line (naming it) unless it holds real numbers (bool, integer,
    float): complex probabilities are refused, never silently made real."""
    dt = np.dtype(dtype)
    if dt.kind not in "biuf":
        raise InputError(f"{label} has dtype {dt}, not real probabilities in [0, 1]: {PROBABILITY_HINT}")
    return dt


def probability_view(array: Any, label: str, scale: float | None = None, channel_last: bool = False) -> _Lazy:
    """The one reader of probability maps: a lazy float32 ``(C, Z, Y, X)`` view of a stored or in-memory array.

    Accepted: ``(C, Z, Y, X)`` (``Z×Y×X×C`` with ``channel_last``, as TIFF stores it); a ``(Z, Y, X)`` map
    (one channel); a ``(Y, X)`` map, taken as one slice ``(1, 1, Y, X)`` (decision: a 2-D map is a
    one-slice volume, so ``segment`` writes ``(1, Y, X)`` labels and ``evaluate --prob`` scores 2-D
    labels). Other ranks and dtypes that are not real numbers (complex, ...) are refused in one line
    naming the shape or dtype; values are checked when read (:class:`slicewise.infer.instances.ProbabilitySource`).
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
    return _Lazy(array, scale, channel_last=channel_last)


@dataclass
class Prediction:
    """A prediction output read back: ``probabilities`` lazy (C, Z, Y, X) float32 (de-quantised) or None,
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
    """``n`` channel names from a stored ``channels`` attribute (a list, or its JSON text); ``class<i>`` when it is
    missing, unreadable or of another length."""
    if isinstance(names, (str, bytes)):
        try:
            names = json.loads(names)
        except ValueError:
            names = None
    ok = isinstance(names, (list, tuple, np.ndarray)) and len(names) == n
    return [str(v) for v in names] if ok else [f"class{i}" for i in range(n)]


class _Quantisation(MetadataModel):
    scale: PositiveFloat | None = None


class PredictionMeta(MetadataModel):
    """The ``slicewise`` attributes of a prediction store read back (untrusted: validated; unknown keys kept)."""

    voxel_size: tuple[PositiveFloat, PositiveFloat, PositiveFloat] | None = None
    offset: tuple[NonNegativeInt, NonNegativeInt, NonNegativeInt] | None = None
    quantisation: _Quantisation | None = None
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


def read_prediction(path: str | os.PathLike, key: str | None = None) -> Prediction:
    """Read a prediction output of any layout slicewise writes (NGFF ``.zarr``, the older ``.zarr`` group with
    ``probabilities``/``labels`` arrays, HDF5, TIFF). ``key`` picks a dataset/array of a container holding
    something else. Probabilities come back as float32 (uint8 stores are de-quantised: ``q/255``) through
    :func:`probability_view` (a 2-D map is one slice; complex data and other ranks are refused in one line);
    a 2-D label map comes back as one slice (1, Y, X)."""
    p = check_input_path(path, "prediction")
    if not p.exists():
        raise InputError(f"prediction {p} does not exist: check the path")
    sfx = _suffix(p)
    if sfx in ZARR_SUFFIXES:
        return _read_zarr(p, key)
    if sfx in HDF5_SUFFIXES:
        return _read_hdf5(p, key)
    if sfx in TIFF_SUFFIXES:
        return _read_tiff(p)
    raise InputError(f"cannot read {p} as a prediction: use a .zarr, .h5 or .tif written by slicewise predict")


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
    vs, off, scale = _from_meta(meta)
    if key is not None:
        if key not in node:
            raise InputError(
                f"{p} has no array {key!r}: it holds {', '.join(sorted(node.array_keys())) or 'no arrays'}"
            )
        warn_missing_chunks(node[key], f"{p}:{key}", attrs)
        return _plain(node[key], attrs.get("channels"), meta, f"{p}:{key}")
    ngff = ome_zarr.ngff_attrs(p)  # validated NGFF metadata (v0.4 / v0.5): one line naming the field if bad
    if ngff is not None:
        ms = ngff["multiscales"][0]
        img = ome_zarr.check_levels(p, ms)[0]
        axes = "".join(a["name"] for a in ms.get("axes") or [{"name": a} for a in "tczyx"[-img.ndim :]])
        if vs is None and "voxel_size" not in meta:
            vs = ome_zarr.voxel_size_of(ms, 0, img.ndim)
        label_image = p / "labels" / "labels"
        label_ms = (ome_zarr.ngff_attrs(label_image) or {}).get("multiscales") if label_image.is_dir() else None
        labels = ome_zarr.check_levels(label_image, label_ms[0])[0] if label_ms else None
        for arr, where in ((img, str(p)), (labels, f"{p}/labels/labels")):
            if arr is not None:
                warn_missing_chunks(arr, where, attrs)
        if axes in ("czyx", "cyx"):
            names = meta.get("channels") or [c.get("label") for c in (ngff.get("omero") or {}).get("channels", [])]
            return Prediction(probability_view(img, str(p), scale), labels, _names(names, img.shape[0]), vs, off, meta)
        if axes not in ("zyx", "yx"):
            raise InputError(
                f"{p} is an NGFF image with axes {axes!r}: a prediction has axes czyx (probabilities) or "
                f"zyx (labels); {PROBABILITY_HINT}"
            )
        return Prediction(None, labels if labels is not None else img, list(meta.get("channels") or []), vs, off, meta)
    if PROB_KEY in node or LABEL_KEY in node:
        for k in (PROB_KEY, LABEL_KEY):
            if k in node:
                warn_missing_chunks(node[k], f"{p}:{k}", attrs)
        probs = probability_view(node[PROB_KEY], str(p), scale) if PROB_KEY in node else None
        names = (
            _names(attrs.get("channels"), probs.shape[0]) if probs is not None else list(attrs.get("channels") or [])
        )
        return Prediction(probs, node[LABEL_KEY] if LABEL_KEY in node else None, names, vs, off, meta)
    raise InputError(
        f"{p} holds no prediction (no NGFF image, no 'probabilities'/'labels' arrays): pass the array with key"
    )


def _plain(arr: Any, names: Any, meta: dict[str, Any], label: str) -> Prediction:
    """One array: integer (Z, Y, X) or (Y, X) → labels (a 2-D map as one slice (1, Y, X)); anything else →
    probabilities through :func:`probability_view` (float (Z, Y, X) or (Y, X) → one channel)."""
    vs, off, scale = _from_meta(meta)
    if np.issubdtype(np.dtype(arr.dtype), np.integer) and len(arr.shape) in (2, 3) and not scale:
        return Prediction(None, arr if len(arr.shape) == 3 else _AddAxis(arr), [], vs, off, meta)
    probs = probability_view(arr, label, scale)
    return Prediction(probs, None, _names(names, probs.shape[0]), vs, off, meta)


class _AddAxis:
    """A lazy view of ``array`` with a new axis of length 1 at ``axis`` (0 or -1): reads only what is indexed."""

    def __init__(self, array: Any, axis: int = 0) -> None:
        self._array = array
        self._first = axis == 0
        self.shape = (1, *array.shape) if self._first else (*array.shape, 1)
        self.dtype = array.dtype
        self.ndim = len(self.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        if any(k is Ellipsis for k in key):
            i = key.index(Ellipsis)
            key = key[:i] + (slice(None),) * (len(self.shape) - len(key) + 1) + key[i + 1 :]
        key = key + (slice(None),) * (len(self.shape) - len(key))
        if self._first:
            return np.asarray(self._array[key[1:]])[np.newaxis][(key[0],)]
        return np.asarray(self._array[key[:-1]])[..., np.newaxis][(Ellipsis, key[-1])]


def _read_hdf5(p: Path, key: str | None) -> Prediction:
    import h5py

    try:
        f = h5py.File(p, "r")
    except OSError as err:
        raise InputError(f"cannot read {p} as HDF5 ({str(err).splitlines()[0]}): is the file complete?") from None
    attrs = {k: f.attrs[k] for k in f.attrs}
    meta_raw = attrs.get("slicewise") or attrs.get("slicewise_predict")
    try:
        meta = prediction_meta(meta_raw if isinstance(meta_raw, (str, bytes)) else None, f"{p} attributes")
        if "quantisation" not in meta and "quantisation_scale" in attrs:
            meta = prediction_meta({**meta, "quantisation": {"scale": attrs["quantisation_scale"]}}, f"{p} attributes")
    except InputError:
        f.close()
        raise
    try:
        for k in (key,) if key is not None else (PROB_KEY, LABEL_KEY):
            check_contained(f, k, p)
        if key is not None:
            if key not in f:
                keys = ", ".join(sorted(f.keys()))
                raise InputError(f"{p} has no dataset {key!r}: it holds {keys or 'nothing'}")
            pred = _plain(f[key], attrs.get("channels"), meta, f"{p}:{key}")
        elif PROB_KEY in f or LABEL_KEY in f:
            vs, off, scale = _from_meta(meta)
            probs = probability_view(f[PROB_KEY], str(p), scale) if PROB_KEY in f else None
            names = _names(attrs.get("channels"), probs.shape[0]) if probs is not None else []
            pred = Prediction(probs, f[LABEL_KEY] if LABEL_KEY in f else None, names, vs, off, meta)
        else:
            keys = ", ".join(sorted(f.keys()))
            raise InputError(
                f"{p} holds no 'probabilities' or 'labels' dataset (it has {keys or 'nothing'}): pass the dataset with key"
            )
    except InputError:
        f.close()
        raise
    pred._closer = f
    return pred


#: the fix named when a TIFF's channel axis cannot be told from its metadata.
TIFF_AXES_HINT = (
    "write it with its axes named (tifffile.imwrite(path, array, metadata={'axes': 'CZYX'}), or 'ZYXC' "
    "channel last, as slicewise predict writes), or save it as .h5 / .zarr (channel-first (C, Z, Y, X))"
)


def _tiff_axes(p: Path, md: dict[str, Any], series_axes: str, ndim: int) -> str | None:
    """The axes of a TIFF prediction, as letters of ``CZYX``, from the file's own metadata: the ``axes`` of the
    JSON description (slicewise writes ``ZYXS`` / ``ZYX``), else the axes an OME-TIFF / ImageJ file declares
    (never tifffile's guesses for a plain or shaped file, e.g. ``SYX`` for any 3-plane float stack); ``None``
    when the file names none (the documented convention applies to 2-D / 3-D maps; a 4-D array is refused:
    which axis holds the channels would be a guess)."""
    for text, origin in ((md.get("axes"), "its description"), (series_axes, "its OME / ImageJ metadata")):
        if not isinstance(text, str) or not text:
            continue
        letters = text.upper().replace("S", "C")
        if "Q" in letters or "I" in letters:  # tifffile's "unknown" axes: nothing was declared
            continue
        if (
            len(letters) != ndim
            or set(letters) - set("CZYX")
            or len(set(letters)) != len(letters)
            or "YX" not in letters
        ):
            raise InputError(
                f"{p}: the axes {text!r} named by {origin} do not describe a {ndim}-d probability map "
                f"of C, Z, Y, X: {TIFF_AXES_HINT}"
            )
        return letters
    if ndim == 4:
        raise InputError(
            f"{p} is a 4-d TIFF without axes metadata: whether its channels come first (C, Z, Y, X) or "
            f"last (Z, Y, X, C) would be a guess: {TIFF_AXES_HINT}"
        )
    return None


class _Permuted:
    """A lazy (C, Z, Y, X) view of an array stored with the axes ``order`` (letters of CZYX; a missing C or Z is
    a new axis of length 1): reads only what is indexed."""

    def __init__(self, array: Any, order: str) -> None:
        self._array, self._order = array, order
        sizes = dict(zip(order, (int(n) for n in array.shape)))
        self.shape = tuple(sizes.get(a, 1) for a in "CZYX")
        self.dtype = array.dtype
        self.ndim = 4

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        if any(k is Ellipsis for k in key):
            i = key.index(Ellipsis)
            key = key[:i] + (slice(None),) * (4 - len(key) + 1) + key[i + 1 :]
        keys = dict(zip("CZYX", tuple(key) + (slice(None),) * (4 - len(key))))
        out = np.asarray(self._array[tuple(keys[a] for a in self._order)])
        kept = [a for a in self._order if not isinstance(keys[a], (int, np.integer))]
        for a in "CZYX":  # a missing axis: indexed by 0 (dropped) or a slice (a new axis of length 1)
            if a not in self._order and not isinstance(keys[a], (int, np.integer)):
                out = np.asarray(out[..., np.newaxis][(Ellipsis, keys[a])])
                kept.append(a)
        target = [a for a in "CZYX" if a in kept]
        return np.transpose(out, [kept.index(a) for a in target])


def _read_tiff(p: Path) -> Prediction:
    import tifffile

    from slicewise.data.io import damaged, open_volume, tifffile_warnings

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
