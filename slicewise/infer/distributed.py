"""Block-wise prediction on a dask.distributed cluster: one machine (``local:N``) or a running scheduler.

:func:`run_blocks` hands the pending blocks of a prediction to dask workers:

- ``"local:N"`` starts a ``LocalCluster`` of N worker **processes** with one dask thread each (a block
  task holds the GIL-free torch work; parallelism comes from processes). Each worker runs torch with
  ``max(1, cores // N)`` intra-op threads, so N workers never oversubscribe the machine's cores, and
  gets ``memory_limit="auto"`` (the machine's memory / N; the nanny restarts a worker that exceeds it).
  ``"local"`` alone means one worker per core.
- ``"tcp://host:port"`` (or ``tls://…``, or a ``Client`` / cluster object, e.g. dask-jobqueue's
  ``SLURMCluster``) joins a running scheduler; the cluster is left running afterwards. Workers must see
  the input, the model file and the output on a shared file system. There, torch uses the worker's cores
  divided by the number of workers on its host.

The model is loaded **once per worker** by a :class:`ModelPlugin` registered under the model's hash
(a second run with the same model reuses it). A model given as a path is read by the workers from
that path; an in-memory model is saved once to a temporary file (``save_model``) that local workers
read, and whose bytes travel inside the plugin to remote workers. A model that is not a slicewise
``SegmentationModel`` (no ``config``) travels pickled inside the plugin instead.

Each task opens the input itself (by path and key; never shipped through the scheduler), calls
:func:`slicewise.infer.blocks.predict_block`, writes its region through
``PredictionWriter.reopen(partial, Plan.from_json).write_block`` and records the block with ``mark_done``: workers
write straight to the store, and nothing but block indices comes back. Finished blocks are skipped,
so a killed run resumes where it stopped (the input-identity check is the engine's, when it opens the
writer). A :class:`~slicewise.errors.SlicewiseError` raised in a worker is re-raised on the client as
the same one-line error; a worker that dies repeatedly (out of memory) becomes a one-line error too.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from distributed import (
    KilledWorker,
    WorkerPlugin,
    as_completed,
    get_worker,
)

from slicewise import models
from slicewise.data.io import open_volume
from slicewise.data.io.stores import PredictionWriter
from slicewise.errors import InputError, SlicewiseError
from slicewise.infer.blocks import Plan, model_hash, predict_block, prepare_model
from slicewise.utils import progress
from slicewise.utils.cluster import connect, cores, parse_address

log = logging.getLogger(__name__)

_VOLUMES: dict[tuple[str, str | None], Any] = {}


class ModelPlugin(WorkerPlugin):
    """Worker plugin that loads the prediction model once per worker (``name`` = ``slicewise-model-<hash>``).

    Exactly one of ``path`` (a model file the worker reads), ``payload`` (the bytes of a saved model file)
    or ``module`` (a pickled ``torch.nn.Module``) is set. ``threads_per_host`` maps host → number of
    workers there, so torch gets the worker's cores divided by its neighbours."""

    idempotent = True

    def __init__(
        self,
        name: str,
        *,
        path: str | None = None,
        payload: bytes | None = None,
        module: Any = None,
        threads_per_host: dict[str, int] | None = None,
    ) -> None:
        self.name = name
        self.path, self.payload, self.module = path, payload, module
        self.threads_per_host = threads_per_host or {}
        self.model: Any = None

    def setup(self, worker: Any) -> None:
        import torch

        host = str(getattr(worker, "ip", ""))
        if host in self.threads_per_host:
            torch.set_num_threads(max(1, cores() // self.threads_per_host[host]))
        elif "OMP_NUM_THREADS" in os.environ:
            torch.set_num_threads(max(1, int(os.environ["OMP_NUM_THREADS"])))
        if self.module is not None:
            self.model = self.module
        elif self.path is not None:
            self.model = _load(self.path)
        else:
            with tempfile.TemporaryDirectory(prefix="slicewise-model-") as tmp:
                p = Path(tmp) / "model.pt"
                p.write_bytes(self.payload or b"")
                self.model = _load(str(p))
        self.model.eval()
        log.debug("worker %s loaded model %s (%d torch threads)", worker.address, self.name, torch.get_num_threads())

    def teardown(self, worker: Any) -> None:
        self.model = None


def _load(path: str) -> Any:
    return models.load_model(path, map_location="cpu")


def _model_key(model: Any, plan: Any) -> str:
    h = str(getattr(plan, "model_hash", "") or "")
    if not h:
        if isinstance(model, (str, os.PathLike)):
            st = Path(model).stat()
            h = hashlib.sha1(f"{Path(model).resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:16]
        else:
            h = model_hash(model)
    return f"slicewise-model-{h}"


def _volume(path: str, key: str | None) -> Any:
    """The input volume, opened once per worker process (by path and key)."""
    k = (path, key)
    if k not in _VOLUMES:
        if len(_VOLUMES) >= 4:
            _VOLUMES.pop(next(iter(_VOLUMES))).close()
        _VOLUMES[k] = open_volume(path, key=key)
    return _VOLUMES[k]


def predict_and_write(plugin_name: str, input_path: str, key: str | None, partial: str, block: Any, plan: Any) -> int:
    """The task one worker runs for one block: read (with the halo), predict, write, mark done. Returns the index."""
    model = prepare_model(get_worker().plugins[plugin_name].model, plan)
    probs = predict_block(model, _volume(input_path, key), block, plan)
    writer = PredictionWriter.reopen(partial, Plan.from_json)
    try:
        writer.write_block(block, probs)
        writer.mark_done(block.index)
    finally:
        writer.abort(keep=True)  # close the worker's handles; the output claim stays with the client
    return int(block.index)


def _plugin(client: Any, model: Any, key: str, local: bool, tmpdir: Path) -> ModelPlugin:
    hosts: dict[str, int] = {}
    try:
        info = client.scheduler_info(n_workers=-1)
    except TypeError:  # distributed < 2025: every worker is listed anyway
        info = client.scheduler_info()
    for w in info["workers"].values():
        hosts[str(w.get("host", ""))] = hosts.get(str(w.get("host", "")), 0) + 1
    if isinstance(model, (str, os.PathLike)):
        return ModelPlugin(key, path=str(Path(model).absolute()), threads_per_host=hosts)
    if getattr(model, "config", None) is None:
        return ModelPlugin(key, module=model, threads_per_host=hosts)

    saved = models.save_model(model, tmpdir / "model.pt")
    if local:
        return ModelPlugin(key, path=str(saved), threads_per_host=hosts)
    return ModelPlugin(key, payload=saved.read_bytes(), threads_per_host=hosts)


def run_blocks(
    address: Any,
    model: Any,
    input_path: str | os.PathLike,
    key: str | None,
    writer_partial_path: str | os.PathLike,
    blocks: Sequence[Any],
    plan: Any,
) -> None:
    """Predict ``blocks`` of ``plan`` on the dask cluster at ``address`` into the partial output at
    ``writer_partial_path`` (see the module docstring). ``model``: a slicewise model, any ``nn.Module``,
    or the path of a saved model file. Blocks already marked done are skipped. Returns when every block
    is written and marked done; raises the worker's one-line error otherwise."""
    if not isinstance(input_path, (str, os.PathLike)):
        raise InputError(
            "prediction on a dask cluster reads the input by path: save the array to a file "
            "(e.g. slicewise.data.write_volume(...)) and pass its path"
        )
    partial = str(Path(writer_partial_path).absolute())
    writer = PredictionWriter.reopen(partial, Plan.from_json)
    try:
        done = writer.done()
        backend = writer.backend
    finally:
        writer.abort(keep=True)
    if backend == "hdf5":
        raise InputError(
            "HDF5 files cannot be written by several processes at once: use a .zarr (or .tif) output "
            "with --dask, or predict without --dask"
        )
    todo = [b for b in blocks if int(b.index) not in done]
    if not todo:
        return
    source = str(Path(input_path).absolute()) if Path(input_path).exists() else os.fspath(input_path)
    name = _model_key(model, plan)
    tmpdir = Path(tempfile.mkdtemp(prefix="slicewise-dask-"))
    try:
        with connect(address) as client:
            local = isinstance(address, str) and isinstance(parse_address(address), int)
            client.register_plugin(_plugin(client, model, name, local, tmpdir), name=name)
            futures = [
                client.submit(
                    predict_and_write,
                    name,
                    source,
                    key,
                    partial,
                    b,
                    plan,
                    pure=False,
                    key=f"slicewise-block-{name[-16:]}-{int(b.index)}",
                )
                for b in todo
            ]
            try:
                for fut in progress(as_completed(futures), desc="blocks", total=len(futures)):
                    try:
                        fut.result()
                    except SlicewiseError as err:
                        raise type(err)(str(err)) from None
                    except KilledWorker:
                        raise InputError(
                            f"a dask worker died repeatedly while predicting ({len(todo)} blocks pending): "
                            "out of memory? use a smaller --block or fewer workers per machine, "
                            "then rerun the same command to resume"
                        ) from None
            finally:
                client.cancel([f for f in futures if not f.done()])
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
