"""Run-folder safety of ``train()``: weights-only checkpoints, confined checkpoint paths, restart
states after a kill during the first checkpoint write, resume identity, one writer per folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from slicewise.errors import InputError
from slicewise.models import load_model
from slicewise.training import train
from slicewise.training.run import StaleRunError
from slicewise.utils.ownership import mark_owned


class Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def finished(tmp_path_factory, make_tiny_config):
    """A finished tiny run (checkpoints after steps 2 and 4) to copy from."""
    cfg = make_tiny_config()
    out = tmp_path_factory.mktemp("done") / "run"
    train(cfg, out=out)
    return cfg, out


def _copy(run: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(run, dst)
    return dst


def test_checkpoint_paths_outside_the_run_folder_are_never_loaded_or_deleted(finished, tmp_path):
    cfg, done = finished
    run = _copy(done, tmp_path)
    marker, victim = tmp_path / "PWNED", tmp_path / "victim.txt"
    victim.write_text("keep me")
    torch.save({"state_dict": {}, "x": Evil(marker)}, tmp_path / "evil.ckpt")
    last = run / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, weights_only=True)
    for state in ckpt["callbacks"].values():  # a forged callback state pointing outside the run
        state["best_model_path"] = str(tmp_path / "evil.ckpt")
        state["kth_best_model_path"] = str(victim)
        state["best_k_models"] = {str(victim): torch.tensor(-1.0), str(tmp_path / "evil.ckpt"): torch.tensor(-1.0)}
    torch.save(ckpt, last)
    with pytest.raises(StaleRunError, match="config changed"):  # a longer run is another config: refused
        train({**cfg, "trainer": {**cfg["trainer"], "max_steps": 6}}, out=run, resume=True)
    res = train(out=run, resume=True)
    assert not marker.exists() and victim.read_text() == "keep me"
    assert res.best_checkpoint == run / "checkpoints" / "best.ckpt"
    load_model(res.best_model)


def test_unsafe_or_damaged_checkpoints_are_refused_in_one_line(finished, tmp_path):
    _, done = finished
    run = _copy(done, tmp_path)
    marker = tmp_path / "PWNED"
    torch.save({"state_dict": {}, "x": Evil(marker)}, run / "checkpoints" / "best.ckpt")
    with pytest.raises(StaleRunError, match="not written by slicewise.*--restart"):
        train(out=run, resume=True)
    last = run / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])
    with pytest.raises(StaleRunError, match="damaged or incomplete"):
        train(out=run, resume=True)
    assert not marker.exists()
    res = train(out=run, restart=True)  # the documented way out
    assert torch.load(res.last_checkpoint, weights_only=True)["global_step"] == 4


def test_simulated_partial_first_checkpoint_write_restarts_automatically(make_tiny_config, tmp_path):
    """What a kill -9 inside the first checkpoint write leaves: config, logs, a partial temporary
    checkpoint and a stale lock, but no last.ckpt. Neither --resume nor a fresh run may dead-end."""
    cfg = make_tiny_config()
    for resume in (True, False):
        run = tmp_path / f"run-{resume}"
        (run / "checkpoints").mkdir(parents=True)
        (run / "logs" / "version_0").mkdir(parents=True)
        (run / "config.yaml").write_text("seed: 0\n")
        mark_owned(run, "train", ["config.yaml", "logs/version_0/"])  # the marker a run writes before anything else
        (run / "checkpoints" / ".last.tmp-deadbeef.ckpt").write_bytes(b"PK\x03\x04 partial")
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
        import socket

        (run / "checkpoints" / ".last.ckpt.lock").write_text(f"{int(dead.stdout)} {socket.gethostname()}")
        res = train(cfg, out=run, resume=resume)
        assert torch.load(res.last_checkpoint, weights_only=True)["global_step"] == 4
        assert not list(run.rglob(".*tmp-*")) and not (run / "logs" / "version_1").exists()


def test_kill_9_during_the_first_checkpoint_write_leaves_a_restartable_folder(make_tiny_config, tmp_path):
    """A real SIGKILL halfway through writing the first checkpoint, then the documented recovery."""
    import yaml

    cfg = make_tiny_config()
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    run = tmp_path / "run"
    script = textwrap.dedent(f"""
        import os, signal, torch
        from slicewise.training import run as r
        def save(self, checkpoint, path, storage_options=None):
            with r.atomic_path(path) as tmp:
                torch.save(checkpoint, tmp)
                tmp.write_bytes(tmp.read_bytes()[: tmp.stat().st_size // 2])
                os.kill(os.getpid(), signal.SIGKILL)
        r.AtomicCheckpointIO.save_checkpoint = save
        r.train({str(tmp_path / "cfg.yaml")!r}, out={str(run)!r})
    """)
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert p.returncode == -9, p.stderr
    assert (run / "checkpoints").is_dir() and not (run / "checkpoints" / "last.ckpt").exists()
    res = train(tmp_path / "cfg.yaml", out=run, resume=True)
    assert torch.load(res.last_checkpoint, weights_only=True)["global_step"] == 4


def test_a_finished_run_needs_resume_or_restart(finished, tmp_path):
    cfg, done = finished
    run = _copy(done, tmp_path)
    with pytest.raises(InputError, match="--resume.*--restart"):
        train(cfg, out=run)
    with pytest.raises(InputError, match="exclude"):
        train(cfg, out=run, resume=True, restart=True)
    shutil.rmtree(run / "checkpoints")  # as a study cell leaves it: models kept, checkpoints gone
    for resume in (False, True):
        with pytest.raises(InputError, match="finished run.*--restart"):
            train(cfg, out=run, resume=resume)
    assert (run / "best.pt").is_file()


def test_resume_accepts_runtime_settings_and_refuses_changed_data(make_tiny_config, tmp_path):
    import numpy as np

    from slicewise.data.io import write_volume
    from slicewise.data.synthetic import make_phantom

    ph = make_phantom(shape=(10, 64, 64), seed=0)
    write_volume(tmp_path / "raw.tif", ph.raw)
    write_volume(tmp_path / "lab.tif", ph.semantic.astype(np.uint8))
    cfg = make_tiny_config()
    cfg["data"].update(raw=str(tmp_path / "raw.tif"), labels=str(tmp_path / "lab.tif"))
    cfg["model"]["classes"] = 3
    run = tmp_path / "run"
    train(cfg, out=run)
    train(cfg, out=run, resume=True, overrides=["data.num_workers=0", "trainer.devices=1"])  # where it runs: allowed
    raw = ph.raw.copy()
    raw[5, 30:34, 30:34] += 1
    (tmp_path / "raw.tif").unlink()
    write_volume(tmp_path / "raw.tif", raw)
    with pytest.raises(StaleRunError, match="training data raw .* changed since"):
        train(cfg, out=run, resume=True)


def test_a_second_writer_of_a_run_folder_is_refused_at_its_start(make_tiny_config, tmp_path):
    from slicewise.utils.atomic import claim_output

    run = tmp_path / "run"
    code = f"import sys; from slicewise.training import train; train({make_tiny_config()!r}, out={str(run)!r})"
    with claim_output(run):
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode != 0 and "being written by another slicewise process" in p.stderr
    assert not run.exists()


def test_study_cell_with_a_malicious_checkpoint_trains_afresh(make_tiny_config, tmp_path):
    from slicewise.studies.cells import train_model

    cfg = make_tiny_config()
    work = tmp_path / "cell"
    (work / "train" / "checkpoints").mkdir(parents=True)
    (work / "train" / "config.yaml").write_text("seed: 0\n")
    marker = tmp_path / "PWNED"
    torch.save({"state_dict": {}, "x": Evil(marker)}, work / "train" / "checkpoints" / "last.ckpt")
    ctx = SimpleNamespace(workdir=work, cell=SimpleNamespace(id="c"), study=SimpleNamespace(extras={}))
    model, info = train_model(ctx, cfg)
    assert not marker.exists() and Path(info["model"]).is_file() and model.in_slices == 3
