"""End-to-end ``pretrain()``: run folder, weights file and its provenance, exact resume, mirror symmetry."""

from __future__ import annotations

import csv

import pytest
import pytorch_lightning as pl
import torch

import slicewise
from slicewise.errors import InputError
from slicewise.models.encoder_file import read_provenance


class Crash(pl.Callback):
    """Simulates a crash (kill -9) after optimizer step ``at``, past the checkpoint of step 2."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == self.at:
            raise RuntimeError("simulated crash")


def _state(path):
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    return ckpt["state_dict"], ckpt.get("slicewise_memory_bank")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    from tests.selfsup.conftest import TINY

    return slicewise.pretrain(
        out=tmp_path_factory.mktemp("ref") / "run", overrides=[*TINY, "model.channel_init=mirror"]
    )


def test_run_folder_holds_weights_with_provenance_curves_and_report(reference):
    res = reference
    assert res.weights == res.out_dir / "encoder.safetensors" and res.weights.is_file()
    prov = read_provenance(res.weights)
    assert prov["method"] == "mocov2" and prov["steps"] == 4 and prov["in_slices"] == 3 and prov["dz"] == 1
    assert (
        prov["channel_init"] == "mirror"
        and prov["start_weights"] == "random"
        and prov["encoder"] == "test_efficientnet"
    )
    assert prov["data"]["raw"][0]["synthetic"] == [6, 64, 64] and prov["environment"]["versions"]["torch"]
    rows = list(csv.DictReader(res.metrics_csv.open()))
    assert sum(1 for r in rows if r.get("train/loss")) == 4
    knn = {int(r["step"]): float(r["val/knn"]) for r in rows if r.get("val/knn")}
    assert sorted(knn) == [0, 1, 3] and all(
        0.0 <= v <= 1.0 for v in knn.values()
    )  # the start point, then each validation
    assert res.report is not None and "mocov2" in res.report.read_text()
    assert (res.out_dir / "report" / "curves.png").is_file()
    assert not list(res.out_dir.rglob(".*tmp-*"))


def test_mirror_stays_exactly_symmetric_through_pretraining(reference):
    from safetensors.torch import load_file

    sd = load_file(str(reference.weights))
    w = sd[read_provenance(reference.weights)["first_layer_key"]]
    assert w.shape[1] == 3 and torch.equal(w, w.flip(1))
    start = slicewise.build_model(encoder="test_efficientnet", weights="random", in_slices=3, channel_init="mirror")
    assert not torch.equal(start.first_layer.weight.detach(), w)  # it was trained, and stayed symmetric


def test_resume_after_a_crash_is_bit_identical(reference, tmp_path, tiny):
    out = tmp_path / "crashed"
    overrides = [*tiny, "model.channel_init=mirror"]
    with pytest.raises(RuntimeError, match="simulated crash"):
        slicewise.pretrain(out=out, overrides=overrides, callbacks=[Crash(at=3)])
    with pytest.raises(InputError, match="--resume"):
        slicewise.pretrain(out=out, overrides=overrides)  # an existing run is never overwritten silently
    res = slicewise.pretrain(out=out, resume=True)  # the run's own config.yaml
    (a, bank_a), (b, bank_b) = (
        _state(res.out_dir / "checkpoints" / "last.ckpt"),
        _state(reference.out_dir / "checkpoints" / "last.ckpt"),
    )
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(bank_a["bank"], bank_b["bank"]) and torch.equal(bank_a["bank_ptr"], bank_b["bank_ptr"])
    assert res.weights.read_bytes()[:200] and read_provenance(res.weights)["steps"] == 4


def test_resume_refuses_a_changed_config(reference, tmp_path, tiny):
    out = tmp_path / "changed"
    with pytest.raises(RuntimeError):
        slicewise.pretrain(out=out, overrides=tiny, callbacks=[Crash(at=3)])
    with pytest.raises(InputError, match="config changed.*views.z_context"):
        slicewise.pretrain(out=out, overrides=[*tiny, "views.z_context=1"], resume=True)


def test_reading_regions_on_demand_trains_exactly_as_device_resident_volumes(reference, tmp_path, tiny):
    res = slicewise.pretrain(
        out=tmp_path / "lazy", overrides=[*tiny, "model.channel_init=mirror", "data.on_device=false"]
    )
    a, _ = _state(res.out_dir / "checkpoints" / "last.ckpt")
    b, _ = _state(reference.out_dir / "checkpoints" / "last.ckpt")
    assert all(torch.equal(a[k], b[k]) for k in b)
