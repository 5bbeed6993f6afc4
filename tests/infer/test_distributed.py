"""dask.distributed block-wise prediction on a real multi-process LocalCluster (2 workers, started once)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from slicewise.data.io import write_volume
from slicewise.data.io.predictions import read_prediction
from slicewise.errors import InputError
from slicewise.infer import distributed as dist
from slicewise.infer.predict import predict, predict_to
from slicewise.models.build import build_model, save_model
from slicewise.utils.cluster import cores, start_local_cluster

SETTINGS: dict[str, Any] = {"tile": 64, "overlap": 0.25, "block": (3, 48, 40), "device": "cpu", "progress": False}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    from distributed import Client

    with start_local_cluster(2) as c, Client(c) as client:
        yield client


@pytest.fixture(scope="module")
def model() -> Any:
    return build_model(
        encoder="test_convnext",
        weights="random",
        in_slices=3,
        decoder_channels=(16, 8, 8, 8, 8),
        class_names=["background", "membrane"],
    ).eval()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, model: Any) -> tuple[Path, np.ndarray]:
    """An OME-Zarr-free plain Zarr input and its in-memory (sequential) prediction, the reference."""
    root = tmp_path_factory.mktemp("dist")
    vol = np.random.default_rng(0).integers(0, 256, (7, 96, 80), dtype=np.uint8)
    write_volume(root / "in.zarr", vol, voxel_size=(30, 4, 4))
    return root / "in.zarr", predict(model, vol, **SETTINGS)


def _address(cluster: Any) -> str:
    return cluster.scheduler.address


def _block_tasks(records: list[dict[str, Any]]) -> int:
    return sum(str(r["key"]).startswith("slicewise-block") for r in records)


def test_two_workers_equal_sequential_and_load_model_once(cluster: Any, model: Any, data: Any, tmp_path: Path) -> None:
    from distributed import get_task_stream

    src, ref = data
    with get_task_stream(cluster) as ts:
        out = predict_to(model, src, tmp_path / "p.zarr", dask=_address(cluster), **SETTINGS)
    pred = read_prediction(out)
    assert np.abs(np.asarray(pred.probabilities[...]) - ref).max() <= 1e-6
    assert pred.channels == ["background", "membrane"]
    assert _block_tasks(ts.data) == 3 * 2 * 2  # 7×96×80 in 3×48×40 blocks
    assert len({r["worker"] for r in ts.data if str(r["key"]).startswith("slicewise-block")}) == 2

    name = dist._model_key(model, type("P", (), {"model_hash": ""})())
    first = cluster.run(lambda dask_worker: id(dask_worker.plugins[name].model))
    out2 = predict_to(model, src, tmp_path / "q.zarr", dask=_address(cluster), dtype="uint8", **SETTINGS)
    assert cluster.run(lambda dask_worker: id(dask_worker.plugins[name].model)) == first  # loaded once per worker
    q = np.asarray(read_prediction(out2).probabilities[...])
    assert np.abs(q - ref).max() <= 0.5 / 255 + 1e-6  # uint8 quantization: round(255·p)


def test_model_file_and_torch_threads(cluster: Any, model: Any, data: Any, tmp_path: Path) -> None:
    src, ref = data
    path = save_model(model, tmp_path / "m.pt")
    out = predict_to(path, src, tmp_path / "p.zarr", dask=_address(cluster), **SETTINGS)
    assert np.abs(np.asarray(read_prediction(out).probabilities[...]) - ref).max() <= 1e-6
    pids = set(cluster.run(os.getpid).values())
    assert len(pids) == 2 and os.getpid() not in pids  # two worker processes
    assert set(cluster.nthreads().values()) == {1}  # one block at a time per worker
    threads = max(1, cores() // 2)
    assert set(cluster.run(lambda: os.environ["OMP_NUM_THREADS"]).values()) == {str(threads)}
    assert set(cluster.run(lambda: __import__("torch").get_num_threads()).values()) == {threads}


def test_killed_client_resumes_with_identical_blocks(cluster: Any, model: Any, data: Any, tmp_path: Path) -> None:
    """kill -9 of the client after 3 finished blocks; the rerun computes only the rest, and the result is exact."""
    from distributed import get_task_stream

    src, ref = data
    mpath = save_model(model, tmp_path / "m.pt")
    script = textwrap.dedent(f"""
        import os, signal
        from slicewise.infer import distributed as dist
        from slicewise.infer.predict import predict_to
        real = dist.progress
        def dying(it, **kw):
            for i, x in enumerate(real(it, **kw)):
                if i == 3:
                    os.kill(os.getpid(), signal.SIGKILL)
                yield x
        dist.progress = dying
        predict_to(
            {str(mpath)!r}, {str(src)!r}, {str(tmp_path / "k.zarr")!r}, dask={_address(cluster)!r}, **{SETTINGS!r}
        )
    """)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(dist.__file__).parents[2]), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run([sys.executable, "-c", script], check=False, env=env, capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    assert not (tmp_path / "k.zarr").exists()
    with get_task_stream(cluster) as ts:
        out = predict_to(mpath, src, tmp_path / "k.zarr", dask=_address(cluster), **SETTINGS)
    assert _block_tasks(ts.data) <= 12 - 3  # blocks queued before the kill may still finish on the workers
    assert np.abs(np.asarray(read_prediction(out).probabilities[...]) - ref).max() <= 1e-6


def test_premarked_blocks_are_skipped(
    cluster: Any, model: Any, data: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An interrupted client (Ctrl-C after 5 blocks) leaves a partial output; the rerun finishes it exactly."""
    from distributed import get_task_stream

    src, ref = data
    real = dist.progress

    def interrupted(it: Any, **kw: Any) -> Iterator[Any]:
        for i, x in enumerate(real(it, **kw)):
            if i == 5:
                raise KeyboardInterrupt
            yield x

    monkeypatch.setattr(dist, "progress", interrupted)
    with pytest.raises(KeyboardInterrupt):
        predict_to(model, src, tmp_path / "i.zarr", dask=_address(cluster), **SETTINGS)
    monkeypatch.setattr(dist, "progress", real)
    with get_task_stream(cluster) as ts:
        out = predict_to(model, src, tmp_path / "i.zarr", dask=_address(cluster), **SETTINGS)
    assert _block_tasks(ts.data) <= 12 - 5
    assert np.abs(np.asarray(read_prediction(out).probabilities[...]) - ref).max() <= 1e-6


def test_worker_error_is_one_line(cluster: Any, model: Any, tmp_path: Path) -> None:
    vol = np.random.default_rng(1).random((4, 64, 64)).astype(np.float32)
    vol[3, 50, 50] = np.nan
    write_volume(tmp_path / "nan.zarr", vol)
    with pytest.raises(InputError) as err:
        predict_to(model, tmp_path / "nan.zarr", tmp_path / "o.zarr", dask=_address(cluster), **SETTINGS)
    assert "NaN" in str(err.value) and "\n" not in str(err.value)
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_hdf5_output_refused(cluster: Any, model: Any, data: Any, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="HDF5 files cannot be written by several processes"):
        predict_to(model, data[0], tmp_path / "o.h5", dask=_address(cluster), **SETTINGS)
