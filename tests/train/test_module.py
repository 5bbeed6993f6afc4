"""The LightningModule pieces on a phantom batch, without a Trainer (fast)."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.data import default_collate

from slicewise.config import TrainConfig, validate
from slicewise.models import build_model
from slicewise.training.datamodule import SliceDataModule
from slicewise.training.module import SegmentationModule, dice_from_counts, lr_factor


@pytest.fixture
def setup(tiny_config):
    cfg = validate(TrainConfig, tiny_config)
    torch.manual_seed(0)
    data = SliceDataModule(cfg)
    data.setup("fit")
    batch = default_collate([data.train_set[i] for i in range(2)])
    module = SegmentationModule(build_model(cfg.model), cfg)
    return cfg, module, batch


def test_a_few_steps_on_a_fixed_phantom_batch_lower_the_loss(setup):
    cfg, module, batch = setup
    assert batch["image"].dtype == torch.uint8 and batch["image"].shape == (2, 3, 64, 64)
    assert batch["target"].shape == (2, 64, 64) and int(batch["target"].max()) <= 2
    opt = module.configure_optimizers()["optimizer"]
    module.train()
    prepared = module._prepare(batch)
    losses = []
    for _ in range(6):
        loss, _ = module.loss_fn(module(prepared["image"]), prepared)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
    assert losses[-1] < 0.9 * losses[0], losses


def test_frozen_encoder_keeps_its_state_while_the_decoder_learns(setup, tiny_config):
    tiny_config["optim"]["freeze_encoder_steps"] = 5
    cfg = validate(TrainConfig, tiny_config)
    _, module, batch = setup
    module = SegmentationModule(module.model, cfg)  # no trainer attached: global_step is 0 < 5
    enc0 = {k: v.clone() for k, v in module.model.encoder.state_dict().items()}
    dec0 = {k: v.clone() for k, v in module.model.decoder.state_dict().items()}
    opt = module.configure_optimizers()["optimizer"]
    module.train()
    module.on_train_batch_start(batch, 0)
    prepared = module._prepare(batch)
    loss, _ = module.loss_fn(module(prepared["image"]), prepared)
    loss.backward()
    module.on_before_optimizer_step(opt)
    opt.step()
    assert all(torch.equal(v, enc0[k]) for k, v in module.model.encoder.state_dict().items())  # BN stats too
    assert any(not torch.equal(v, dec0[k]) for k, v in module.model.decoder.state_dict().items())


def test_augmentation_moves_targets_with_the_image(setup):
    _, module, batch = setup
    a = module._prepare(batch, seed=5)
    b = module._prepare(batch, seed=5)
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["target"], b["target"])
    assert a["image"].dtype == torch.float32 and float(a["image"].max()) <= 1.0
    # labels are permuted with the image: the class histogram is unchanged
    assert torch.equal(
        torch.bincount(a["target"].flatten(), minlength=3), torch.bincount(batch["target"].flatten(), minlength=3)
    )


def test_module_state_holds_only_the_model():
    cfg = validate(
        TrainConfig,
        {"model": {"weights": "random", "decoder_channels": [16, 16, 8, 8, 8]}, "trainer": {"compile": False}},
    )
    module = SegmentationModule(build_model(cfg.model), cfg)
    assert all(k.startswith("model.") for k in module.state_dict())


def test_lr_schedule_warms_up_linearly_then_follows_a_cosine():
    f = [lr_factor(s, warmup=4, total=20, min_ratio=0.1) for s in range(21)]
    assert f[:4] == [0.25, 0.5, 0.75, 1.0]
    assert f[4] == 1.0 and math.isclose(f[20], 0.1)
    assert math.isclose(f[12], 0.1 + 0.9 * 0.5)  # half-way through the cosine
    assert all(a >= b for a, b in zip(f[4:], f[5:]))


def test_dice_from_counts():
    counts = torch.tensor([[5.0, 0.0, 2.0], [5.0, 0.0, 4.0], [5.0, 0.0, 2.0]])
    torch.testing.assert_close(dice_from_counts(counts), torch.tensor([1.0, 1.0, 4.0 / 6.0]))


def test_extra_heads_get_boundary_and_distance_targets_from_instances(tiny_config):
    tiny_config["model"]["extra_heads"] = ["boundary", "distance"]
    cfg = validate(TrainConfig, tiny_config)
    data = SliceDataModule(cfg)
    data.setup("fit")
    batch = default_collate([data.train_set[i] for i in range(2)])
    assert batch["boundary"].shape == batch["distance"].shape == (2, 1, 64, 64)
    assert set(torch.unique(batch["boundary"]).tolist()) == {0.0, 1.0}
    assert 0.0 <= float(batch["distance"].min()) and float(batch["distance"].max()) == 1.0
    module = SegmentationModule(build_model(cfg.model), cfg)
    prepared = module._prepare(batch, seed=3)
    _, parts = module.loss_fn(module(prepared["image"]), prepared)
    assert {"ce", "dice", "boundary", "distance"} <= set(parts)
    # the boundary map moved with the image: it still marks where the (augmented) instances meet
    assert torch.equal(prepared["boundary"].sum(), batch["boundary"].sum())
