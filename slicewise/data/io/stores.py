"""Block-wise outputs written apart from their computation (as MONAI separates its inferer from its mergers).

Two layers:

- :func:`create_array_store` — one block-writable array (``store[box] = block``) in a ``.zarr``
  (Zarr format 2), ``.h5/.hdf5/.hdf`` (dataset ``key``) or ``.tif/.tiff`` (uncompressed, through
  ``tifffile.memmap``), written to a temporary sibling and renamed onto the output by ``finalize()``.
- :class:`PredictionWriter` — a prediction output (probabilities and/or labels) written block by
  block, resumable: the partial output is a hidden sibling ``.<stem>.partial<suffix>`` and its state
  folder ``.<stem>.partial<suffix>.state/`` holds ``state.json`` (plan, model hash, input identity) and
  one empty file per finished block under ``done/`` (so parallel workers never write the same file).
  Backends: OME-Zarr (``.zarr``; the NGFF layout of docs/ARCHITECTURE.md, "Prediction store layout":
  level 0 written by blocks, then the pyramid and metadata through :mod:`slicewise.data.io.ngff`),
  HDF5 (datasets ``probabilities`` (C, Z, Y, X) and ``labels`` (Z, Y, X), box writes) and TIFF (one
  array: probabilities channel-last Z×Y×X×C, or labels Z×Y×X; a memmap of the final shape).

A writer is given the prediction plan (:class:`PredictionPlan`: the output's shape, offset, block, channels,
kind and dtype; JSON-ready, with a fingerprint that decides resuming); the storage layer records it and reads it
back with the plan's own ``from_json``, so it never depends on the code that computes the blocks. Outputs are
read back by :func:`slicewise.data.io.predictions.read_prediction`.

Prediction stores are created here with zarr / h5py / tifffile directly (OME-Zarr groups, resumable
partials, quantization attributes), not through :func:`slicewise.data.io.create_zarr`, which makes the
plain single-array Zarr that :func:`slicewise.data.io.write_volume` fills.

Every store claims its output (:func:`slicewise.utils.atomic.claim_output`) and checks it
(:func:`slicewise.data.io.outputs.check_output_path`) when created, before any computing, so a second
writer to the same output is refused in one line and an unwritable location fails at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from slicewise.data.grid import Box, block_grid
from slicewise.data.io import ngff
from slicewise.data.io.formats import HDF5_SUFFIXES, PREDICTION_SUFFIXES, TIFF_SUFFIXES, ZARR_SUFFIXES
from slicewise.data.io.outputs import check_output_path, publish, stamp_folder
from slicewise.data.io.predictions import LABEL_KEY, PROB_DTYPES, PROB_KEY, UINT8_SCALE, quantize
from slicewise.errors import InputError
from slicewise.utils.atomic import (
    check_free_space,
    claim_output,
    remove_path,
    reserve_space,
    temp_sibling,
    write_guard,
    write_json,
)
from slicewise.utils.identity import check_identity

log = logging.getLogger(__name__)

STATE_VERSION = 1

__all__ = [
    "ArrayStore",
    "PredictionPlan",
    "PredictionWriter",
    "check_output_kind",
    "chunk_for",
    "create_array_store",
    "labels_from",
    "open_prediction_writer",
    "partial_path",
    "state_path",
]


class PredictionPlan(Protocol):
    """What a prediction writer needs of a prediction plan (:class:`slicewise.infer.blocks.Plan` is one)."""

    heads: tuple[tuple[str, int, int], ...]
    out_channels: int
    channel_names: tuple[str, ...]
    output_kind: str
    dtype: str
    block: tuple[int, int, int]

    @property
    def n_classes(self) -> int: ...

    @property
    def out_shape(self) -> tuple[int, int, int]: ...

    @property
    def offset(self) -> tuple[int, int, int]: ...

    def to_json(self) -> dict[str, Any]: ...

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> PredictionPlan: ...

    def fingerprint(self) -> dict[str, Any]: ...


class PlacedBlock(Protocol):
    """A block of a plan: ``local(origin)`` is its box in the output array (:class:`slicewise.infer.blocks.Block`)."""

    def local(self, origin: Sequence[int]) -> Box: ...


#: reads a plan back from its JSON (the plan class's ``from_json``)
PlanReader = Callable[[dict[str, Any]], PredictionPlan]


def _suffix(path: Path) -> str:
    return path.suffix.lower()


def check_output_kind(path: str | os.PathLike, output_kind: str) -> Path:
    """Raise a one-line error for an unknown extension or a TIFF asked to hold two arrays."""
    p = Path(path)
    if _suffix(p) not in PREDICTION_SUFFIXES:
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


def labels_from(probs: np.ndarray, plan: PredictionPlan) -> np.ndarray:
    """Argmax over the seg channels of ``(C, …)`` float probabilities → uint8 (uint16 beyond 256 classes)."""
    start, stop = next((a, b) for name, a, b in plan.heads if name == "seg")
    return np.argmax(probs[start:stop], axis=0).astype(label_dtype(plan))


def label_dtype(plan: PredictionPlan) -> np.dtype:
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

    def __setitem__(self, box: Any, block: np.ndarray) -> None:
        with write_guard(self.path, self.nbytes):  # a full disk: one line, the temporary sibling is deleted by abort()
            self._set(box, block)

    @abstractmethod
    def _set(self, box: Any, block: np.ndarray) -> None: ...

    @abstractmethod
    def __getitem__(self, box: Any) -> np.ndarray: ...

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

    def _set(self, box: Any, block: np.ndarray) -> None:
        self.array[box] = block

    def __getitem__(self, box: Any) -> np.ndarray:
        return np.asarray(self.array[box])

    def _close(self) -> None:
        pass


class _H5ArrayStore(ArrayStore):
    def __init__(self, *args: Any, file: Any, key: str) -> None:
        super().__init__(*args)
        self.file, self.key = file, key

    def _set(self, box: Any, block: np.ndarray) -> None:
        self.file[self.key][box] = block

    def __getitem__(self, box: Any) -> np.ndarray:
        return np.asarray(self.file[self.key][box])

    def _close(self) -> None:
        if self.file:
            self.file.close()


class _TiffArrayStore(ArrayStore):
    def __init__(self, *args: Any, memmap: Any) -> None:
        super().__init__(*args)
        self.memmap = memmap

    def _set(self, box: Any, block: np.ndarray) -> None:
        self.memmap[box] = block

    def __getitem__(self, box: Any) -> np.ndarray:
        return np.array(self.memmap[box])

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
    if sfx not in PREDICTION_SUFFIXES:
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
        return _ARRAY_STORES[_backend_of(final)](final, tmp, shape_t, dt, claim, chunks_t, key, attrs)
    except BaseException:
        remove_path(tmp)
        claim.close()
        raise


def _create_zarr(
    final: Path, tmp: Path, shape: tuple[int, ...], dt: np.dtype, claim: Any, chunks: Any, key: Any, attrs: Any
) -> ArrayStore:
    """A Zarr-v2 array (or a group holding array ``key``) that stores every chunk, so a lost one is detectable."""
    import zarr

    kw: dict[str, Any] = dict(
        shape=shape, chunks=chunks or shape, dtype=dt, fill_value=0, config={"write_empty_chunks": True}
    )
    if key:
        group = zarr.open_group(str(tmp), mode="w", zarr_format=2)
        arr = group.create_array(key, **kw)
        group.attrs.update(_zarr_attrs(attrs))
    else:
        arr = zarr.create_array(store=str(tmp), zarr_format=2, **kw)
        arr.attrs.update(_zarr_attrs(attrs))
    return _ZarrArrayStore(final, tmp, shape, dt, claim, array=arr)


def _create_hdf5(
    final: Path, tmp: Path, shape: tuple[int, ...], dt: np.dtype, claim: Any, chunks: Any, key: Any, attrs: Any
) -> ArrayStore:
    """An HDF5 dataset ``key`` (default ``data``), its space reserved: HDF5 never meets a full disk mid-write."""
    import h5py

    f = h5py.File(tmp, "w")
    k = key or "data"
    ds = f.create_dataset(k, shape=shape, dtype=dt, chunks=chunks or True)
    for name, v in (attrs or {}).items():
        ds.attrs[name] = _h5_attr(v)
    f.flush()
    store = _H5ArrayStore(final, tmp, shape, dt, claim, file=f, key=k)
    _reserve_or_close(tmp, store.nbytes + _H5_OVERHEAD, final, f.close)
    return store


def _create_tiff(
    final: Path, tmp: Path, shape: tuple[int, ...], dt: np.dtype, claim: Any, chunks: Any, key: Any, attrs: Any
) -> ArrayStore:
    """An uncompressed TIFF memmap of the final shape (one array; ``attrs`` in the shaped-metadata description)."""
    import tifffile

    meta = {"axes": "ZYXS" if len(shape) == 4 else "ZYX"[-len(shape) :], **(attrs or {})}
    mm = tifffile.memmap(
        tmp,
        shape=shape,
        dtype=dt,
        photometric="minisblack",
        planarconfig="contig" if len(shape) == 4 else None,
        metadata=_zarr_attrs(meta),
        bigtiff=int(np.prod(shape)) * dt.itemsize > 2**31,
    )
    _reserve_or_close(tmp, os.path.getsize(tmp), final, lambda: None)  # no page of the map is written yet
    return _TiffArrayStore(final, tmp, shape, dt, claim, memmap=mm)


_ARRAY_STORES: dict[str, Callable[..., ArrayStore]] = {"zarr": _create_zarr, "hdf5": _create_hdf5, "tiff": _create_tiff}


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
    probabilities are quantized to the store dtype. ``mark_done(i)`` records a finished block (after its
    data is flushed), ``done()`` lists them, ``finalize()`` publishes the output, ``abort()`` releases it.
    """

    backend = ""

    def __init__(
        self,
        output: Path,
        partial: Path,
        plan: PredictionPlan,
        state: dict[str, Any],
        claim: contextlib.ExitStack | None,
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
    def _write(self, local: Box, probs: np.ndarray | None, labels: np.ndarray | None) -> None:
        """Write the block's stored probabilities / labels at ``local`` (output coordinates) and flush."""

    @abstractmethod
    def _close(self) -> None:
        """Release file handles."""

    def _complete(self) -> None:  # noqa: B027 - an optional hook, not abstract: most backends have nothing to finish
        """Backend-specific finishing (pyramids, metadata) before the rename; default none."""

    # -- public API -------------------------------------------------------------------------
    @property
    def n_blocks(self) -> int:
        return len(block_grid(self.plan.out_shape, self.plan.block, self.plan.offset))

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

    def write_block(self, block: PlacedBlock, probs: np.ndarray) -> None:
        kind = self.plan.output_kind
        labels = labels_from(probs, self.plan) if kind != "probabilities" else None
        stored = quantize(probs, self.plan.dtype) if kind != "labels" else None
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
                    f"prediction into {self.partial} is incomplete ({missing} blocks missing): "
                    f"rerun the same command to resume"
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
    def reopen(cls, partial: str | os.PathLike, read_plan: PlanReader) -> PredictionWriter:
        """Re-open a partial output (e.g. in a dask worker) from its state, its plan read back by ``read_plan`` (the
        plan class's ``from_json``); the claim stays with the creator."""
        p = Path(partial)
        state = _read_state(p, read_plan)
        if state is None:
            raise InputError(f"{p} is not a partial slicewise prediction (no readable {state_path(p) / 'state.json'})")
        writer = _WRITERS[_backend_of(Path(state["output"]))](
            Path(state["output"]), p, read_plan(state["plan"]), state, None
        )
        writer._open()
        return writer


def _read_state(partial: Path, read_plan: PlanReader) -> dict[str, Any] | None:
    """The recorded state of a partial output, or None when missing, unreadable or malformed (a state that cannot be
    trusted is never resumed from: the run starts afresh)."""
    try:
        state = json.loads((state_path(partial) / "state.json").read_text())
        if not isinstance(state, dict) or not isinstance(state.get("plan"), dict):
            return None
        read_plan(state["plan"]).fingerprint()
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

    def _write(self, local: Box, probs: np.ndarray | None, labels: np.ndarray | None) -> None:
        if probs is not None:
            self._image[(slice(None), *local)] = probs
        if labels is not None:
            self._labels[local] = labels
            if probs is None:
                self._image[local] = labels

    def _close(self) -> None:
        pass

    def _complete(self) -> None:
        plan, root = self.plan, self._group("r+")
        vs = self.state.get("voxel_size")
        name = Path(self.output).stem
        if plan.output_kind == "labels":
            n = ngff.build_pyramid(root, method="mode")
            ngff.write_image_metadata(
                root, axes=("z", "y", "x"), voxel_size=vs, n_levels=n, name=name, method="mode", offset_zyx=plan.offset
            )
        else:
            n = ngff.build_pyramid(root, method="mean")
            ngff.write_image_metadata(
                root,
                axes=("c", "z", "y", "x"),
                voxel_size=vs,
                n_levels=n,
                channel_names=list(plan.channel_names),
                name=name,
                offset_zyx=plan.offset,
            )
        if plan.output_kind != "probabilities":
            m = ngff.build_pyramid(root["labels"]["labels"], method="mode")
            ngff.write_labels_metadata(root, "labels", voxel_size=vs, n_levels=m, offset_zyx=plan.offset)
        root.attrs["slicewise"] = _zarr_attrs(self.attrs())


class HDF5PredictionWriter(PredictionWriter):
    """HDF5: datasets ``probabilities`` (C, Z, Y, X) and/or ``labels`` (Z, Y, X), written box by box; attributes
    ``channels`` and ``slicewise`` (JSON strings), ``quantisation_scale`` (the stored spelling) when quantized."""

    backend = "hdf5"

    def _chunks(self) -> tuple[int, int, int]:
        sizes = zip(self.plan.block, self.plan.out_shape, (16, 256, 256))
        return tuple(min(b, s, c) for b, s, c in sizes)  # type: ignore[return-value]

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

    def _write(self, local: Box, probs: np.ndarray | None, labels: np.ndarray | None) -> None:
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

    def _write(self, local: Box, probs: np.ndarray | None, labels: np.ndarray | None) -> None:
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
    plan: PredictionPlan,
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
        plan = dataclasses.replace(plan, dtype=dtype)
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
        old = _read_state(part, type(plan).from_json) if (part.exists() or state_path(part).exists()) else None
        if (
            old is not None
            and resume
            and not overwrite
            and old.get("version") == STATE_VERSION
            and type(plan).from_json(old["plan"]).fingerprint() == plan.fingerprint()
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
