"""Resumable state of a multi-pass block-wise job (``segment``): what an interrupted run keeps for the next.

The state lives in a hidden sibling of the output, ``.<name>.state/``:

- ``state.json``: the job's fingerprint (settings, block shape, region) and its input's identity
  (:mod:`slicewise.utils.identity`);
- ``<pass>.npz``: the result of each finished pass (tables, object sizes), written when the pass ends;
- ``<pass>.blocks/<i>.npz``: what block ``i`` of a block-wise pass produced besides its voxels (written
  after the block's voxels are stored, so a recorded block is always complete);
- ``<name>.zarr``: the pass's scratch arrays (int64, chunked by the block).

A rerun with the same fingerprint skips finished passes and recorded blocks; its input must have the same
identity (else a one-line error). Another fingerprint, ``resume=False`` or ``overwrite`` discards the state.
The folder is removed when the job succeeds; an interrupted or failed job leaves it for the rerun.
Writes are atomic (temporary name, then rename), so a kill at any moment leaves a usable state.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from slicewise.utils.atomic import remove_path, temp_sibling, write_json
from slicewise.utils.identity import check_identity

log = logging.getLogger(__name__)

STATE_VERSION = 1
Arrays = dict[str, np.ndarray]


def state_folder(output: str | os.PathLike) -> Path:
    """The state folder of a resumable job writing ``output``: the hidden sibling ``.<name>.state``."""
    out = Path(output)
    return out.with_name(f".{out.name}.state")


def _save(path: Path, arrays: Arrays) -> None:
    tmp = temp_sibling(path)
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)


def _load(path: Path) -> Arrays | None:
    try:
        with np.load(path) as data:
            return {k: data[k] for k in data.files}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, EOFError):  # torn by a crash of the file system, not by us: redo it
        log.warning("%s is unreadable: recomputing it", path)
        return None


class BlockLog:
    """Per-block records of one pass: ``load(i)`` what block i produced (None if not yet), ``save(i, arrays)``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def load(self, i: int) -> Arrays | None:
        return _load(self.folder / f"{i}.npz")

    def save(self, i: int, arrays: Arrays) -> None:
        _save(self.folder / f"{i}.npz", arrays)


class JobState:
    """The state folder of one job (see the module docstring); create with :meth:`open`."""

    def __init__(self, folder: Path, resumed: bool) -> None:
        self.folder, self.resumed = folder, resumed

    @classmethod
    def open(
        cls,
        output: str | os.PathLike,
        fingerprint: dict[str, Any],
        identity: dict[str, Any] | None,
        resume: bool = True,
    ) -> JobState:
        """Resume the state of ``output`` when its fingerprint equals ``fingerprint`` (and ``resume``), checking
        the input ``identity``; otherwise start an empty one. Call while holding the output's claim."""
        folder = state_folder(output)
        state = {"version": STATE_VERSION, "fingerprint": fingerprint, "identity": identity}
        old = None
        try:
            old = json.loads((folder / "state.json").read_text())
        except (OSError, ValueError):
            pass
        same = (
            isinstance(old, dict)
            and old.get("version") == STATE_VERSION
            and old.get("fingerprint") == _plain(fingerprint)
        )
        if same and resume:
            check_identity(old.get("identity"), identity or {})
            log.info("resuming %s from %s", output, folder)
            return cls(folder, resumed=True)
        if folder.exists():
            log.info(
                "discarding the state of an interrupted run in %s (other settings, or --overwrite): starting afresh",
                folder,
            )
            remove_path(folder)
        folder.mkdir(parents=True)
        write_json(folder / "state.json", state, overwrite=True, indent=None)
        return cls(folder, resumed=False)

    def step(self, name: str, compute: Callable[[], Arrays]) -> Arrays:
        """The result of pass ``name``: read back when a previous run finished it, else ``compute()``d and kept."""
        path = self.folder / f"{name}.npz"
        done = _load(path)
        if done is not None:
            log.info("%s: pass %r was finished by the interrupted run", self.folder, name)
            return done
        result = compute()
        _save(path, result)
        return result

    def blocks(self, name: str) -> BlockLog:
        """The per-block records of pass ``name``."""
        return BlockLog(self.folder / f"{name}.blocks")

    def array(self, name: str, shape: Sequence[int], chunks: Sequence[int]) -> Any:
        """Scratch int64 Zarr array ``name`` (zeros when new; as the interrupted run left it otherwise)."""
        import zarr

        path = self.folder / f"{name}.zarr"
        shape = tuple(int(s) for s in shape)
        if path.exists():
            try:
                arr = zarr.open_array(str(path), mode="r+")
                if tuple(arr.shape) == shape:
                    return arr
            except Exception:  # noqa: BLE001 — any unreadable scratch array is simply made again
                log.warning("%s is unreadable: making it again", path)
            remove_path(path)
        return zarr.create_array(
            store=str(path),
            shape=shape,
            chunks=tuple(int(c) for c in chunks),
            dtype="int64",
            fill_value=0,
            zarr_format=2,
        )

    def remove(self) -> None:
        """Delete the state (the job succeeded)."""
        remove_path(self.folder)


def _plain(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples → lists), for comparing fingerprints."""
    return json.loads(json.dumps(value, default=str))
