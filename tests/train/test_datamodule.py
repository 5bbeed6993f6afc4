"""Training data: step-based sampling across ranks, validation tiles, worker independence."""

from __future__ import annotations

import csv

import numpy as np
import torch

from slicewise.config import TrainConfig, validate
from slicewise.models import load_model
from slicewise.train import train
from slicewise.train.datamodule import SliceDataModule, StepSampler


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


def test_workers_and_a_short_last_interval_do_not_change_the_run(make_tiny_config, tmp_path):
    results = []
    for workers in (0, 1):
        cfg = make_tiny_config()
        cfg["data"]["num_workers"] = workers
        cfg["trainer"]["max_steps"] = 3  # validation after steps 2 and 3
        results.append(train(cfg, out=tmp_path / f"w{workers}"))
    for res in results:
        assert torch.load(res.last_checkpoint, map_location="cpu", weights_only=False)["global_step"] == 3
        rows = list(csv.DictReader(res.metrics_csv.open()))
        assert [r["step"] for r in rows if r["val/dice"]] == ["1", "2"]
    a, b = (load_model(r.last_model).state_dict() for r in results)
    assert all(torch.equal(a[k], b[k]) for k in a)
