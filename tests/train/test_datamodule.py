"""Training data: step-based sampling across ranks, validation tiles, worker independence."""

from __future__ import annotations

import csv

import numpy as np
import torch

from slicewise.config import TrainConfig, validate
from slicewise.models import load_model
from slicewise.training import train
from slicewise.training.datamodule import SliceDataModule, StepSampler, resident_bytes, resolve_on_device


def test_step_sampler_gives_ranks_disjoint_samples_from_the_global_step():
    step = {"now": 3}
    per_rank = [list(StepSampler(2, 4, lambda: step["now"], total=10, rank=q, world=2)) for q in range(2)]
    assert per_rank[0] == list(range(24, 28)) + list(range(32, 36))  # steps 3 and 4, rank 0
    assert per_rank[1] == list(range(28, 32)) + list(range(36, 40))
    step["now"] = 9
    assert list(StepSampler(2, 4, lambda: step["now"], total=10)) == list(range(36, 40))  # never past `total`


def test_validation_tiles_cover_the_validation_slices(tiny_config):
    tiny_config["data"].update(val_patches=1000, patch_size=32)
    cfg = validate(TrainConfig, tiny_config)
    data = SliceDataModule(cfg)
    data.setup("fit")
    zs = sorted({z for z, _ in data.val_set.tiles})
    assert zs == [8, 9]  # the last 20% of 10 slices; slice 7 is the gap
    assert len(data.val_set) == 2 * 4  # 64² slices in 32² tiles
    covered = np.zeros((64, 64), int)
    for z, (ys, xs) in data.val_set.tiles:
        if z == 8:
            covered[ys, xs] += 1
    assert covered.min() == 1 and covered.max() == 1
    train_z = {int(z) for _, z in data.train_set.sampler.items}
    assert train_z == set(range(7))


def test_workers_and_a_short_last_interval_do_not_change_the_run(make_tiny_config, tmp_path, monkeypatch):
    import slicewise.utils.device as device

    # one torch thread in both runs: with a worker the main process would get cores // 2 threads, and the
    # float sums of CPU convolutions depend on the thread count (not on where the batches come from)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(device, "_explicit_threads", None)
    results = []
    for workers in (0, 1):
        cfg = make_tiny_config()
        cfg["data"].update(num_workers=workers, on_device=False)
        cfg["trainer"]["max_steps"] = 3  # validation after steps 2 and 3
        results.append(train(cfg, out=tmp_path / f"w{workers}"))
    for res in results:
        assert torch.load(res.last_checkpoint, map_location="cpu", weights_only=False)["global_step"] == 3
        rows = list(csv.DictReader(res.metrics_csv.open()))
        assert [r["step"] for r in rows if r["val/dice"]] == ["1", "2"]
    a, b = (load_model(r.last_model).state_dict() for r in results)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_on_device_auto_follows_the_memory_share_and_refuses_extra_heads(tiny_config, monkeypatch):
    import pytest

    import slicewise.training.datamodule as dm
    from slicewise.errors import ConfigError

    cfg = validate(TrainConfig, tiny_config)
    data = SliceDataModule(cfg)
    data.setup("fit")
    assert data.device_sampler is not None  # a 10×64×64 phantom fits in a quarter of any RAM
    vol, cpu = data.volume, torch.device("cpu")
    need = resident_bytes(vol)
    assert need == 10 * 64 * 64 * 2 + 10 * 64 * 8  # uint8 raw + uint8 labels + row counts
    monkeypatch.setattr(dm, "device_memory", lambda device: 4 * need)
    assert resolve_on_device("auto", vol, cpu)
    monkeypatch.setattr(dm, "device_memory", lambda device: 4 * need - 1)
    assert not resolve_on_device("auto", vol, cpu) and resolve_on_device(True, vol, cpu)
    assert not resolve_on_device(False, vol, cpu)
    with_instances = dm.TrainVolume(vol.raw, vol.labels, np.zeros_like(vol.labels))
    assert not resolve_on_device("auto", with_instances, cpu)
    with pytest.raises(ConfigError, match="on_device"):
        resolve_on_device(True, with_instances, cpu)


def test_device_batches_are_drawn_on_the_device_per_step_and_rank(tiny_config):
    tiny_config["data"]["on_device"] = True
    data = SliceDataModule(validate(TrainConfig, tiny_config))
    data.setup("fit")
    loader = data.train_dataloader()
    assert loader.num_workers == 0 and list(loader) == [0, 1]  # step numbers only: no workers, no host patches
    batch = data.on_after_batch_transfer(1, 0)
    assert (
        batch["augmented"] is True
        and batch["image"].dtype == torch.float32
        and tuple(batch["image"].shape) == (2, 3, 64, 64)
    )
    assert 0.0 <= float(batch["image"].min()) and float(batch["image"].max()) <= 1.0
    assert batch["target"].dtype == torch.int64 and tuple(batch["target"].shape) == (2, 64, 64)
    again = data.device_batch(1)
    assert torch.equal(again["image"], batch["image"]) and not torch.equal(
        data.device_batch(0)["image"], batch["image"]
    )
    assert data.on_after_batch_transfer({"image": batch["image"]}, 0)["image"] is batch["image"]  # validation passes
    tiny_config["augment"] = {
        name: 0.0 for name in ("flip", "rot90", "z_reverse", "brightness", "contrast", "gamma", "noise", "blur")
    }
    plain = SliceDataModule(validate(TrainConfig, tiny_config))
    plain.setup("fit")
    raw = plain.device_batch(1)
    assert "augmented" not in raw and raw["image"].dtype == torch.uint8  # the module converts it


def test_device_path_resumes_after_a_crash_exactly(make_tiny_config, tmp_path):
    import pytest
    import pytorch_lightning as pl

    class Crash(pl.Callback):
        def on_train_batch_end(self, trainer, *args) -> None:
            if trainer.global_step == 3:
                raise RuntimeError("simulated crash")

    cfg = make_tiny_config()
    cfg["data"]["on_device"] = True
    ref = train(cfg, out=tmp_path / "ref")
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(cfg, out=tmp_path / "crashed", callbacks=[Crash()])
    res = train(None, out=tmp_path / "crashed", resume=True)
    a, b = (load_model(r.last_model).state_dict() for r in (ref, res))
    assert all(torch.equal(a[k], b[k]) for k in a)
    worker = make_tiny_config()
    worker["data"]["on_device"] = False
    other = load_model(train(worker, out=tmp_path / "workers").last_model).state_dict()
    assert any(not torch.equal(a[k], other[k]) for k in a)  # the paths draw different (equally distributed) patches


def test_ddp_ranks_draw_their_own_device_streams(tiny_config):
    """Two ranks built as Lightning builds them (rank 0 and 1 of 2): each step's batches differ across ranks,
    and each rank's batch is a function of (seed, step, rank) only."""
    from types import SimpleNamespace

    tiny_config["data"]["on_device"] = True
    cfg = validate(TrainConfig, tiny_config)
    ranks = []
    for q in range(2):
        data = SliceDataModule(cfg, world_size=2)
        data.trainer = SimpleNamespace(
            global_rank=q, world_size=2, global_step=0, strategy=SimpleNamespace(root_device=torch.device("cpu"))
        )
        data.setup("fit")
        ranks.append(data)
    a, b = (r.device_batch(3)["image"] for r in ranks)
    assert not torch.equal(a, b)
    assert torch.equal(ranks[1].device_batch(3)["image"], b) and not torch.equal(ranks[1].device_batch(4)["image"], b)


def test_on_device_setting_accepts_auto_true_false_only(tiny_config):
    import pytest

    from slicewise.errors import ConfigError

    for given, want in (("auto", "auto"), ("TRUE", True), ("false", False), (False, False)):
        tiny_config["data"]["on_device"] = given
        assert validate(TrainConfig, tiny_config).data.on_device == want
    tiny_config["data"]["on_device"] = "maybe"
    with pytest.raises(ConfigError, match="on_device.*auto, true or false"):
        validate(TrainConfig, tiny_config)
