"""SIGTERM / SIGINT sent to a real ``slicewise`` process mid-run: exit 143 / 130, one line naming how to resume,
the resumable state on disk, and the uninterrupted result after resuming (:mod:`slicewise.utils.signals`).

Each run goes through a small launcher that patches one step of the job to write a "ready" file and wait there,
so the test sends the signal from outside at a known point of the run (no race with the job's speed)."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from slicewise.utils.signals import Interrupted, interrupted_message, resume_hint

LAUNCHER = textwrap.dedent("""
    import os, pathlib, sys, time
    ready, hook, at = pathlib.Path(os.environ["SW_READY"]), os.environ["SW_HOOK"], int(os.environ["SW_AT"])

    def pause():
        ready.write_text("ready")
        time.sleep(300)

    if hook == "train":
        from slicewise.training import module as m
        step = m.SegmentationModule.training_step
        def training_step(self, batch, batch_idx):
            if self.global_step == at and not ready.exists():
                pause()
            return step(self, batch, batch_idx)
        m.SegmentationModule.training_step = training_step
    elif hook == "predict":
        from slicewise.data.io import stores as store
        mark = store.PredictionWriter.mark_done
        def mark_done(self, index):
            mark(self, index)
            if len(self.done()) == at and not ready.exists():
                pause()
        store.PredictionWriter.mark_done = mark_done
    elif hook == "segment":
        from slicewise.segment import inputs
        mask, calls = inputs.RegionReader.mask, [0]
        def counted(self, *args, **kwargs):
            calls[0] += 1
            if calls[0] == at and not ready.exists():
                pause()
            return mask(self, *args, **kwargs)
        inputs.RegionReader.mask = counted
    from slicewise.cli import main
    main(sys.argv[1:])
""")


def _launch(tmp_path: Path, hook: str, at: int, args: list, sig: int, env: dict | None = None) -> tuple[int, str]:
    """Run ``slicewise ARGS`` through the launcher, send ``sig`` once the job waits at its hook; (status, stderr)."""
    script = tmp_path / "launch.py"
    script.write_text(LAUNCHER)
    ready = tmp_path / f"ready-{hook}-{at}-{sig}"
    full_env = {
        **os.environ,
        "SW_READY": str(ready),
        "SW_HOOK": hook,
        "SW_AT": str(at),
        "OMP_NUM_THREADS": "1",
        **(env or {}),
    }
    p = subprocess.Popen(
        [sys.executable, str(script), *map(str, args)],
        env=full_env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 240
    while not ready.exists():
        if p.poll() is not None or time.time() > deadline:
            p.kill()
            pytest.fail(f"the job ended before its hook (status {p.returncode}): {p.communicate()[1][-2000:]}")
        time.sleep(0.1)
    p.send_signal(sig)
    _, err = p.communicate(timeout=240)
    return p.returncode, err


def _last_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def _cli(args: list) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "slicewise.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=300,
    )


def test_an_interrupted_exception_carries_the_outermost_hint_and_the_status():
    err = Interrupted(signal.SIGTERM)
    assert err.exit_code == 143 and Interrupted(signal.SIGINT).exit_code == 130
    assert not isinstance(err, (Exception, KeyboardInterrupt))  # Lightning neither swallows it nor turns it into exit 1
    with pytest.raises(Interrupted) as caught, resume_hint("outer"), resume_hint("inner"):
        raise err
    assert interrupted_message(caught.value) == "stopped by SIGTERM; outer"


def _weights(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def test_train_on_sigterm_exits_143_keeps_its_checkpoint_and_resumes_to_the_same_weights(tmp_path, tiny_config):
    from slicewise.training import train

    ref = train(copy.deepcopy(tiny_config), out=tmp_path / "ref")
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(tiny_config))
    run = tmp_path / "run"
    code, err = _launch(tmp_path, "train", 3, ["train", tmp_path / "cfg.yaml", "--out", run], signal.SIGTERM)
    assert code == 143, err
    assert _last_line(err) == (
        f"error: stopped by SIGTERM; resume with: slicewise train --out {run} --resume (from its "
        f"last checkpoint; the run restarts afresh if it completed none)"
    )
    assert "Traceback" not in err
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2  # the resumable state
    assert not (run / "best.pt").exists() and not list(run.glob(".*.lock"))
    done = _cli(["train", "--out", run, "--resume"])
    assert done.returncode == 0, done.stderr
    a, b = _weights(ref.last_model), _weights(run / "last.pt")
    sa, sb = a.get("state_dict", a), b.get("state_dict", b)
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_train_on_sigint_exits_130_with_its_checkpoint(tmp_path, tiny_config):
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(tiny_config))
    run = tmp_path / "run"
    code, err = _launch(tmp_path, "train", 3, ["train", tmp_path / "cfg.yaml", "--out", run], signal.SIGINT)
    assert code == 130, err
    assert _last_line(err).startswith(f"error: stopped by SIGINT; resume with: slicewise train --out {run} --resume")
    assert (run / "checkpoints" / "last.ckpt").is_file()


@pytest.fixture(scope="module")
def model_and_volume(tmp_path_factory):
    from slicewise.data.io import write_volume
    from slicewise.models import build_model, save_model

    d = tmp_path_factory.mktemp("sig")
    save_model(
        build_model(encoder="tf_efficientnet_lite0", weights="random", in_slices=3, decoder_channels=(16, 8, 8, 8, 8)),
        d / "m.pt",
    )
    write_volume(d / "gray.tif", np.random.default_rng(4).integers(0, 256, (6, 64, 64), dtype=np.uint8))
    return d


@pytest.mark.parametrize("sig, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_blockwise_predict_on_a_signal_keeps_its_finished_blocks_and_resumes_to_the_same_result(
    model_and_volume, tmp_path, sig, status
):
    from slicewise.data.io.predictions import read_prediction
    from slicewise.data.io.stores import partial_path

    d = model_and_volume
    args = ["predict", d / "m.pt", d / "gray.tif", None, "--tile", "64", "--block", "2,64,64", "--device", "cpu"]
    ref, out = tmp_path / "ref.zarr", tmp_path / "out.zarr"
    assert _cli([*args[:3], ref, *args[4:]]).returncode == 0
    code, err = _launch(tmp_path, "predict", 1, [*args[:3], out, *args[4:]], sig)
    assert code == status, err
    assert _last_line(err) == (
        f"error: stopped by {signal.Signals(sig).name}; rerun the same command to resume: finished "
        f"blocks are kept in {partial_path(out)}"
    )
    assert not out.exists() and partial_path(out).is_dir()
    again = _cli([*args[:3], out, *args[4:]])
    assert again.returncode == 0, again.stderr
    assert "resuming" in again.stderr or "1 done" in again.stderr
    np.testing.assert_array_equal(
        np.asarray(read_prediction(out).probabilities[...]), np.asarray(read_prediction(ref).probabilities[...])
    )


def test_segment_on_sigterm_keeps_its_state_and_resumes_to_the_same_labels(tmp_path):
    import h5py

    from slicewise.data.io import open_volume
    from slicewise.segment.resume import state_folder

    rng = np.random.default_rng(3)
    fg = (rng.random((6, 30, 30)) > 0.6).astype(np.float32)
    prob = np.stack([1 - fg, fg]).astype(np.float32)
    src = tmp_path / "prob.h5"
    with h5py.File(src, "w") as f:
        f["probabilities"] = prob
        f.attrs["channels"] = json.dumps(["background", "foreground"])
    args = ["segment", src, None, "--block", "2,10,10"]
    ref, out = tmp_path / "ref.zarr", tmp_path / "lab.zarr"
    assert _cli([*args[:2], ref, *args[3:]]).returncode == 0
    code, err = _launch(tmp_path, "segment", 5, [*args[:2], out, *args[3:]], signal.SIGTERM)
    assert code == 143, err
    assert _last_line(err) == (
        f"error: stopped by SIGTERM; rerun the same command to resume: finished passes and blocks "
        f"are kept in {state_folder(out)}"
    )
    assert not out.exists() and state_folder(out).is_dir()
    again = _cli([*args[:2], out, *args[3:]])
    assert again.returncode == 0, again.stderr
    np.testing.assert_array_equal(np.asarray(open_volume(out)[...]), np.asarray(open_volume(ref)[...]))


CELL = textwrap.dedent("""
    from slicewise.studies.cells.common import train_model

    def train_cell(ctx):
        model, info = train_model(ctx, CONFIG)
        return {"metrics": [{"metric": "dice", "value": 0.5}], "info": info}
""")


def test_a_study_cell_on_sigterm_exits_143_stays_pending_and_resumes_from_its_checkpoint(tmp_path, tiny_config):
    """The failure this guards against: ``study … --cells 0`` printed Lightning's "Received SIGTERM" and exited 0."""
    (tmp_path / "sigcells.py").write_text(f"CONFIG = {tiny_config!r}\n" + CELL)
    study = tmp_path / "sig.yaml"
    study.write_text(
        yaml.safe_dump(
            {
                "name": "sig",
                "cell": "sigcells:train_cell",
                "data_root": str(tmp_path),
                "grid": {"seed": [0, 1]},
                "comparisons": [],
            }
        )
    )
    out = tmp_path / "out"
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    code, err = _launch(
        tmp_path, "train", 3, ["study", study, "--out", out, "--cells", "0", "--no-report"], signal.SIGTERM, env
    )
    assert code == 143, err
    assert _last_line(err).startswith(
        f"error: stopped by SIGTERM; rerun the same study command to resume (--out {out})"
    )
    cells = list((out / "cells").iterdir())
    assert len(cells) == 1 and not (cells[0] / "result.json").exists() and not (cells[0] / "error.txt").exists()
    assert torch.load(cells[0] / "train" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2
