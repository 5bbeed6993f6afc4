"""End-to-end ``train()`` on the phantom: outputs, resume after a crash, reproduction from config.yaml."""

from __future__ import annotations

import csv

import pytest
import pytorch_lightning as pl
import torch
import yaml

from slicewise.models import load_model
from slicewise.training import train


class Crash(pl.Callback):
    """Simulates a crash after optimizer step ``at`` (after the checkpoint of step 2)."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == self.at:
            raise RuntimeError("simulated crash")


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a) if a else 0.0


@pytest.fixture(scope="module")
def reference(tmp_path_factory, make_tiny_config):
    """One uninterrupted 4-step run (validation and checkpoints after steps 2 and 4)."""
    cfg = make_tiny_config()
    return cfg, train(cfg, out=tmp_path_factory.mktemp("ref") / "run")


def test_run_folder_holds_config_checkpoints_models_and_curve(reference):
    cfg, res = reference
    out = res.out_dir
    assert (out / "config.yaml").is_file() and res.last_checkpoint.is_file() and res.best_checkpoint.is_file()
    assert torch.load(res.last_checkpoint, map_location="cpu", weights_only=False)["global_step"] == 4
    model = load_model(res.best_model)
    assert model.config.classes == 3 and model.in_slices == 3
    last = load_model(res.last_model)
    assert (
        _max_diff(
            last.state_dict(),
            {
                k.removeprefix("model."): v
                for k, v in torch.load(res.last_checkpoint, map_location="cpu", weights_only=False)[
                    "state_dict"
                ].items()
            },
        )
        == 0.0
    )
    rows = list(csv.DictReader(res.metrics_csv.open()))
    assert sum(1 for r in rows if r.get("train/loss")) == 4
    assert sum(1 for r in rows if r.get("val/dice")) == 2
    assert 0.0 <= res.metrics["val/dice"] <= 1.0 and res.best_score == max(
        float(r["val/dice"]) for r in rows if r["val/dice"]
    )
    assert not list(out.rglob(".*tmp-*"))  # atomic writes left no temporaries


def test_resume_after_a_crash_ends_with_the_uninterrupted_weights(reference, tmp_path):
    cfg, ref = reference
    out = tmp_path / "crashed"
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(cfg, out=out, callbacks=[Crash(at=3)])
    assert torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["global_step"] == 2
    with pytest.raises(Exception, match="--resume"):
        train(cfg, out=out)  # an existing run is never overwritten silently
    res = train(None, out=out, resume=True)  # the run's own config.yaml
    assert _max_diff(load_model(res.last_model).state_dict(), load_model(ref.last_model).state_dict()) < 1e-6
    assert res.metrics["val/dice"] == pytest.approx(ref.metrics["val/dice"], abs=1e-6)


def test_saved_config_reproduces_the_run(reference, tmp_path):
    _, ref = reference
    saved = yaml.safe_load((ref.out_dir / "config.yaml").read_text())
    assert saved["model"]["classes"] == 3 and saved["augment"]["z_reverse"] == 0.5  # fully resolved
    res = train(ref.out_dir / "config.yaml", out=tmp_path / "again")
    assert _max_diff(load_model(res.last_model).state_dict(), load_model(ref.last_model).state_dict()) < 1e-6
    other = train(ref.out_dir / "config.yaml", overrides=["seed=1", "trainer.max_steps=2"], out=tmp_path / "seed1")
    assert _max_diff(load_model(other.last_model).state_dict(), load_model(ref.last_model).state_dict()) > 1e-4
