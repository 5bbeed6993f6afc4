"""The LightningModule: loss, augmentation on the device, validation Dice, AdamW + schedule.

- Inputs arrive in the raw dtype and are converted on the device with ``to_unit_float`` (uint8/255),
  augmented there (:func:`slicewise.data.augment.augment`, with image, class target and the
  boundary/distance maps moved together) and made ``channels_last`` — no host work per step.
  Batches of the device-resident sampler (``data.on_device``) arrive augmented, marked ``"augmented"``.
- Randomness per step: at the start of every training step the global torch RNG is seeded from
  ``(seed, global_step, rank)``, so augmentation and dropout are a function of the step and a
  resumed run repeats an uninterrupted one. The augmentation generator lives on the batch's device
  (on CPU exactly the former CPU generator), so on a GPU its draws stay there.
- Validation metric ``val/dice``: the mean over foreground classes (1 … C-1) of the Dice of the
  arg-max prediction over all validation pixels together (sums reduced across ranks); a class
  absent from prediction and ground truth counts as 1. ``val/loss`` is logged too.
- Optimizer: AdamW (no weight decay on biases and normalization weights, i.e. on 1-D
  parameters); learning rate per step: linear warm-up, then cosine to ``min_lr_ratio · lr``.
- Encoder freezing (``optim.freeze_encoder_steps`` = N): for steps < N the encoder's gradients are
  dropped before the optimizer step (AdamW then skips them, weight decay included) and its
  BatchNorm layers run in eval mode. Parameters stay ``requires_grad`` so DDP is unaffected.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from slicewise.config import LossConfig, TrainConfig
from slicewise.data.augment import AugmentConfig, augment
from slicewise.data.stacking import to_unit_float
from slicewise.errors import ConfigError
from slicewise.training.losses import SegmentationLoss


def lr_factor(step: int, warmup: int, total: int, min_ratio: float = 0.0) -> float:
    """Learning-rate multiplier at optimizer ``step``: linear warm-up over ``warmup`` steps
    (reaching 1 at step ``warmup``), then cosine from 1 to ``min_ratio`` at ``total``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    span = max(total - warmup, 1)
    t = min(max(step - warmup, 0) / span, 1.0)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t))


def dice_from_counts(counts: torch.Tensor) -> torch.Tensor:
    """Per-class Dice ``2|P∩G| / (|P| + |G|)`` from counts (3, C): intersection, predicted and
    ground-truth pixels; a class absent from both counts as 1."""
    inter, psum, gsum = counts
    denom = psum + gsum
    return torch.where(denom > 0, 2 * inter / denom.clamp_min(1), torch.ones_like(denom)).float()


def loss_weights(config: TrainConfig) -> LossConfig:
    """The loss section of a config, checked against the model's class count."""
    lc = config.loss
    if lc.class_weights is not None and len(lc.class_weights) != config.model.classes:
        raise ConfigError(
            f"loss.class_weights has {len(lc.class_weights)} values but model.classes={config.model.classes}: "
            f"give one weight per class"
        )
    return lc


def adamw_with_schedule(parameters: Iterable[torch.nn.Parameter], optim: Any, max_steps: int) -> dict[str, Any]:
    """Lightning's optimizer configuration of every slicewise run (training and pretraining): AdamW over the
    trainable ``parameters`` in (decay, no-decay) groups (no decay for biases and norms, ndim ≤ 1), ``optim``'s
    lr / betas / weight decay, and a per-step linear warm-up + cosine schedule (:func:`lr_factor`)."""
    params = [p for p in parameters if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim > 1], "weight_decay": optim.weight_decay},
        {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=optim.lr, betas=optim.betas)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, optim.warmup_steps, max_steps, optim.min_lr_ratio)
    )
    return {"optimizer": opt, "lr_scheduler": {"scheduler": schedule, "interval": "step", "frequency": 1}}


class SegmentationModule(pl.LightningModule):
    """Trains a slicewise ``SegmentationModel`` (``.heads``, optional ``.encoder``) under a :class:`TrainConfig`."""

    def __init__(self, model: nn.Module, config: TrainConfig) -> None:
        super().__init__()
        if config.model.classes < 2:
            raise ConfigError(
                f"model.classes={config.model.classes}: training needs at least 2 classes (background and foreground)"
            )
        self.model = model
        self.config = config
        self.loss_fn = SegmentationLoss(model.heads, loss_weights(config))
        aug = AugmentConfig.from_dict(config.augment)
        self.augment: AugmentConfig | None = None if aug == AugmentConfig.off() else aug
        self.colors = max(1, int(getattr(model, "in_channels", config.model.in_slices)) // config.model.in_slices)
        self.classes = config.model.classes
        object.__setattr__(self, "_forward", model)  # a plain reference, not a second submodule
        self._val_stats: torch.Tensor | None = None

    def configure_model(self) -> None:
        """channels_last and optional ``torch.compile`` (the compiled callable is not a submodule,
        so checkpoints keep the plain parameter names)."""
        tc = self.config.trainer
        if tc.channels_last:
            self.model.to(memory_format=torch.channels_last)
        if tc.compile and self._forward is self.model:
            object.__setattr__(self, "_forward", torch.compile(self.model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw network output for a unit-float input (B, k·C, H, W)."""
        if self.config.trainer.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self._forward(x)

    def _prepare(self, batch: dict[str, torch.Tensor], seed: int | None = None) -> dict[str, torch.Tensor]:
        """Unit-float image; with a ``seed``, the batch augmented (image, target and extra maps alike)."""
        batch = dict(batch)
        if batch.pop("augmented", False):  # the device-resident sampler augmented it already
            return batch
        if seed is None or self.augment is None:
            batch["image"] = to_unit_float(batch["image"])
            return batch
        keys = [k for k in ("target", "boundary", "distance") if k in batch]
        generator = torch.Generator(device=batch["image"].device).manual_seed(seed)
        out = augment(
            batch["image"], *[batch[k] for k in keys], config=self.augment, generator=generator, colors=self.colors
        )
        batch["image"] = out[0]
        batch.update(zip(keys, out[1:]))
        return batch

    def _step_seed(self) -> int:
        """Seed of this step on this rank; also seeds the global torch RNG (dropout etc.)."""
        world, rank = self.trainer.world_size, self.trainer.global_rank
        seed = (self.config.seed * 1_000_003 + self.global_step * world + rank) % (2**62)
        torch.manual_seed(seed)
        return seed

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Seed, augment, forward, loss; logs ``train/loss`` and its parts (on step)."""
        batch = self._prepare(batch, self._step_seed())
        out = self(batch["image"])
        loss, parts = self.loss_fn(out, batch)
        bs = batch["image"].shape[0]
        self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=bs)
        for name, value in parts.items():
            self.log(f"train/{name}", value, on_step=True, on_epoch=False, batch_size=bs)
        self.log("lr", self.optimizers().param_groups[0]["lr"], on_step=True, on_epoch=False, batch_size=bs)
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val_stats = torch.zeros(3, self.classes, dtype=torch.float64, device=self.device)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        """Accumulates per-class intersection / prediction / ground-truth pixel counts."""
        batch = self._prepare(batch)
        out = self(batch["image"])
        loss, _ = self.loss_fn(out, batch)
        self.log("val/loss", loss, on_step=False, on_epoch=True, sync_dist=True, batch_size=batch["image"].shape[0])
        pred = out[:, self.loss_fn.heads["seg"]].argmax(dim=1)
        target = batch["target"]
        n = self.classes
        valid = torch.ones_like(target, dtype=torch.bool)
        if self.config.loss.ignore_index is not None:
            valid = target != self.config.loss.ignore_index
        # fixed-size one-hot sums: no data-dependent shapes, hence no host synchronization
        weight = valid.unsqueeze(-1).double()
        p1 = F.one_hot(pred, n).double() * weight
        g1 = F.one_hot(target.clamp(0, n - 1), n).double() * weight
        assert self._val_stats is not None
        self._val_stats += torch.stack([(p1 * g1).sum((0, 1, 2)), p1.sum((0, 1, 2)), g1.sum((0, 1, 2))])

    def on_validation_epoch_end(self) -> None:
        """Logs ``val/dice`` (mean foreground Dice) and ``val/dice_<c>`` per class."""
        if self._val_stats is None:
            return
        dice = dice_from_counts(self.trainer.strategy.reduce(self._val_stats, reduce_op="sum"))
        # already reduced over ranks: sync_dist averages identical values (and keeps Lightning quiet)
        self.log("val/dice", dice[1:].mean(), prog_bar=True, sync_dist=True)
        for c in range(self.classes):
            self.log(f"val/dice_{c}", dice[c], sync_dist=True)
        self._val_stats = None

    def _encoder(self) -> nn.Module:
        enc = getattr(self.model, "encoder", None)
        if not isinstance(enc, nn.Module):
            raise ConfigError("optim.freeze_encoder_steps needs a model with an .encoder submodule: set it to 0")
        return enc

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """Keeps the encoder's norm layers in eval mode while it is frozen."""
        n = self.config.optim.freeze_encoder_steps
        if n and self.global_step < n:
            for m in self._encoder().modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        elif n and self.global_step == n:
            self._encoder().train()

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Drops the encoder's gradients while it is frozen."""
        n = self.config.optim.freeze_encoder_steps
        if n and self.global_step < n:
            for p in self._encoder().parameters():
                p.grad = None

    def configure_optimizers(self) -> dict[str, Any]:
        """:func:`adamw_with_schedule` over the model's trainable parameters."""
        return adamw_with_schedule(self.model.parameters(), self.config.optim, self.config.trainer.max_steps)
