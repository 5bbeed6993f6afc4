"""Resume after an interruption, refusal of a changed input, one writer per output, early output checks."""

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from slicewise.data.io import write_volume
from slicewise.data.io.predictions import read_prediction
from slicewise.data.io.stores import PredictionWriter, partial_path, state_path
from slicewise.data.tiling import tile_starts
from slicewise.errors import InputError
from slicewise.infer.blocks import Plan, plan_blocks
from slicewise.infer.predict import predict, predict_to
from slicewise.utils.atomic import lock_path

KW = dict(tile=16, batch_size=4, progress=False, device="cpu", block=(2, 40, 52))
TILES = 3 * 4  # tiles per plane of 40x52 at tile 16, overlap 0.25


@pytest.fixture
def raw_file(tmp_path, small_volume):
    return write_volume(tmp_path / "in.h5", small_volume, key="raw")


def _interrupt(model, src, out, after_planes, **kw):
    model.fail_after, model.calls = after_planes * TILES, 0
    with pytest.raises(RuntimeError, match="simulated"):
        predict_to(model, src, out, key="raw", **{**KW, **kw})
    model.fail_after, model.calls = None, 0


@pytest.mark.parametrize("name", ["r.zarr", "r.h5", "r.tif"])
def test_interrupted_run_resumes_to_the_uninterrupted_result(stub, raw_file, small_volume, tmp_path, name):
    model = stub()
    ref_out = predict_to(model, raw_file, tmp_path / f"ref{os.path.splitext(name)[1]}", key="raw", **KW)
    ref = np.asarray(read_prediction(ref_out).probabilities[...])
    out = tmp_path / name
    _interrupt(model, raw_file, out, after_planes=5)  # blocks 0, 1 finished (2 planes each), block 2 crashed
    assert not out.exists() and partial_path(out).exists()
    assert PredictionWriter.reopen(partial_path(out), Plan.from_json).done() == {0, 1}
    assert not (tmp_path / lock_path(out).name).exists()  # the claim is released on the way out
    predict_to(model, raw_file, out, key="raw", **KW)
    assert model.calls == 3 * TILES  # only slices 4, 5, 6
    np.testing.assert_array_equal(np.asarray(read_prediction(out).probabilities[...]), ref)
    assert not partial_path(out).exists() and not state_path(partial_path(out)).exists()


def test_a_changed_input_is_refused_in_one_line_and_other_settings_start_afresh(stub, raw_file, small_volume, tmp_path):
    import h5py

    model = stub()
    out = tmp_path / "c.zarr"
    _interrupt(model, raw_file, out, after_planes=3)
    with h5py.File(raw_file, "r+") as f:  # change one voxel
        f["raw"][6, 39, 51] = (int(f["raw"][6, 39, 51]) + 1) % 256
    with pytest.raises(InputError, match="input changed since the interrupted run") as e:
        predict_to(model, raw_file, out, key="raw", **KW)
    assert "\n" not in str(e.value) and model.calls == 0 and partial_path(out).exists()
    predict_to(model, raw_file, out, key="raw", overwrite=True, **KW)  # --overwrite starts afresh
    assert model.calls == 7 * TILES
    changed = np.array(small_volume)
    changed[6, 39, 51] = (int(changed[6, 39, 51]) + 1) % 256
    np.testing.assert_allclose(
        read_prediction(out).probabilities[...], predict(model, changed, **KW), rtol=0, atol=1e-6
    )
    out2 = tmp_path / "d.h5"
    _interrupt(model, raw_file, out2, after_planes=3)
    predict_to(model, raw_file, out2, key="raw", **{**KW, "overlap": 0.5})  # other settings: everything again
    assert model.calls == 7 * len(tile_starts(40, 16, 0.5)) * len(tile_starts(52, 16, 0.5))


def test_a_second_writer_is_refused_before_computing(stub, small_volume, tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        for name in ("o.tif", "o.zarr", "o.h5"):
            out = tmp_path / name
            lock_path(out).write_text(f"{sleeper.pid} {socket.gethostname()}")
            model = stub()
            with pytest.raises(InputError, match="being written by another slicewise process") as e:
                predict_to(model, small_volume, out, **KW)
            assert "\n" not in str(e.value) and model.calls == 0 and not out.exists()
            assert not partial_path(out).exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    out = tmp_path / "o.tif"
    predict_to(stub(), small_volume, out, **KW)  # a lock left by a dead process is taken over
    assert out.exists() and not lock_path(out).exists()


def test_an_unwritable_output_fails_before_computing(stub, small_volume, tmp_path):
    (tmp_path / "file").write_text("x")
    model = stub()
    with pytest.raises(InputError, match="is a file, not a folder") as e:
        predict_to(model, small_volume, tmp_path / "file" / "o.zarr", **KW)
    assert "\n" not in str(e.value) and model.calls == 0


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_kill_9_then_rerun_gives_identical_blocks(stub, raw_file, small_volume, tmp_path):
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {os.path.dirname(os.path.dirname(__file__))!r})
        from conftest import StubModel
        import slicewise.infer.predict
        P = sys.modules["slicewise.infer.predict"]  # the package exports a function of the same name
        from slicewise.infer.blocks import iter_predicted_blocks

        def slow(*a, **k):
            for item in iter_predicted_blocks(*a, **k):
                yield item
                time.sleep(0.3)
        P.iter_predicted_blocks = slow
        P.predict_to(StubModel(), sys.argv[1], sys.argv[2], key="raw", tile=16, batch_size=4, progress=False,
                     device="cpu", block=(1, 40, 52))
    """)
    out = tmp_path / "k.zarr"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", script, str(raw_file), str(out)], env=env)
    deadline = time.time() + 60
    done_dir = state_path(partial_path(out)) / "done"
    while (
        time.time() < deadline
        and proc.poll() is None
        and len(list(done_dir.glob("*")) if done_dir.exists() else []) < 2
    ):
        time.sleep(0.05)
    assert proc.poll() is None, "the prediction process ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = PredictionWriter.reopen(partial_path(out), Plan.from_json).done()
    assert 2 <= len(finished) < 7 and not out.exists()
    model = stub()
    predict_to(model, raw_file, out, key="raw", **{**KW, "block": (1, 40, 52)})
    assert model.calls == (7 - len(finished)) * TILES
    ref = predict(stub(), small_volume, **KW)
    np.testing.assert_allclose(read_prediction(out).probabilities[...], ref, rtol=0, atol=1e-6)
    assert len(plan_blocks(small_volume.shape, (1, 40, 52))) == 7
