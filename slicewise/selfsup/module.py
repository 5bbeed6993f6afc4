"""The LightningModule of self-supervised pretraining.

- Training "data" are step numbers (``training.datamodule.StepNumbers`` read through a ``StepSampler``):
  at step s the module seeds one ``torch.Generator`` (on the views' device) from ``(seed, s, rank)``
  (:func:`slicewise.data.sampling.sample_seed`) and draws the pair with it
  (:meth:`~slicewise.selfsup.views.ViewSource.draw`); the global torch RNG is reseeded from the same
  triple. Views, augmentation and the memory-bank updates are therefore a function of the step, and a run
  resumed from ``last.ckpt`` ends with the weights of an uninterrupted one (bit-identical on CPU).
- Logged: ``train/loss``, ``lr`` (per step), and at each validation (every ``trainer.val_every`` steps and
  at the end) ``val/embedding_std``, ``val/embedding_std_ratio`` (std · sqrt(dim)) on a fixed batch of
  views, and ``val/knn`` (the k-NN probe, when labels are given): see :mod:`slicewise.selfsup.probe`.
- Optimizer: AdamW (no weight decay on 1-D parameters), linear warm-up then cosine
  (:func:`slicewise.training.module.lr_factor`), over the trainable parameters (momentum copies excluded).
- The MoCo memory bank (a non-persistent buffer in lightly) is stored in the checkpoint under
  ``slicewise_memory_bank`` and restored from it.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from slicewise.config import PretrainConfig
from slicewise.data.sampling import sample_seed
from slicewise.selfsup.probe import ProbeSet, embed, embedding_std, knn_score
from slicewise.selfsup.views import ViewSource
from slicewise.training.module import adamw_with_schedule

__all__ = ["PretrainModule"]

log = logging.getLogger(__name__)
MONITOR_BATCH = 64  # views in the fixed batch of the collapse signal
_BANK = "slicewise_memory_bank"


class PretrainModule(pl.LightningModule):
    """Pretrains ``method.backbone`` with ``method.loss`` on pairs from ``source``."""

    def __init__(
        self, method: nn.Module, config: PretrainConfig, source: ViewSource, probe: ProbeSet | None = None
    ) -> None:
        super().__init__()
        self.method = method
        self.config = config
        self.source = source
        self.probe = probe
        self.collapsed = False
        self._monitor: torch.Tensor | None = None

    @property
    def backbone(self) -> nn.Module:
        """The online backbone (what the weights file stores)."""
        return self.method.backbone

    def _generator(self, step: int) -> torch.Generator:
        world, rank = self.trainer.world_size, self.trainer.global_rank
        torch.manual_seed(sample_seed(self.config.seed, step * world + rank, 1))
        dev = self.source.device if self.source.resident else torch.device("cpu")
        return torch.Generator(device=dev).manual_seed(sample_seed(self.config.seed, step, rank))

    def on_fit_start(self) -> None:
        self.source.device = self.device

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """Draw the step's pair, compute the method's loss; logs ``train/loss`` and ``lr``."""
        step = int(self.global_step)
        x1, x2 = self.source.draw(self.config.data.batch_size, self._generator(step))
        loss, _ = self.method.loss(x1, x2, step, self.config.trainer.max_steps)
        bs = x1.shape[0]
        self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=bs)
        self.log("lr", self.optimizers().param_groups[0]["lr"], on_step=True, on_epoch=False, batch_size=bs)
        return loss

    def _monitor_views(self) -> torch.Tensor:
        """A fixed batch of first views (seeded by the run's seed only), drawn once."""
        if self._monitor is None:
            dev = self.source.device if self.source.resident else torch.device("cpu")
            g = torch.Generator(device=dev).manual_seed(sample_seed(self.config.seed, 2**31, 0))
            self._monitor = self.source.draw(MONITOR_BATCH, g)[0]
        return self._monitor

    def signals(self) -> dict[str, float]:
        """``val/embedding_std``, ``val/embedding_std_ratio`` and (with labels) ``val/knn`` of the backbone now."""
        rng = torch.get_rng_state()
        emb = embed(self.backbone, self._monitor_views())
        dim = emb.shape[1]
        std = embedding_std(emb)
        out = {"val/embedding_std": std, "val/embedding_std_ratio": std * math.sqrt(dim)}
        if self.probe is not None:
            out["val/knn"] = knn_score(embed(self.backbone, self.probe.x), self.probe.y, self.config.data.probe_k)
        torch.set_rng_state(rng)
        return out

    def on_train_start(self) -> None:
        """The signals of the start point (step 0, before any update), logged once per run."""
        if self.global_step == 0 and self.trainer.is_global_zero:
            values = self.signals()
            for logger in self.loggers:
                logger.log_metrics(values, step=0)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        """Embedding spread on the fixed batch and the k-NN probe score (rank 0's numbers, logged by all ranks);
        warns once when the embedding collapsed."""
        values = self.signals()
        for name, value in values.items():
            self.log(
                name, value, on_step=False, on_epoch=True, prog_bar=name == "val/knn", batch_size=1, sync_dist=True
            )
        std, ratio = values["val/embedding_std"], values["val/embedding_std_ratio"]
        if self.global_step > 0 and not self.collapsed and ratio < self.config.method.collapse_threshold:
            self.collapsed = True
            if self.trainer.is_global_zero:
                log.warning(
                    "embedding collapsed at step %d: per-dimension std %.3g < %.3g/sqrt(dim) (all views map to "
                    "nearly one point); lower optim.lr, use stronger views or another method",
                    self.global_step,
                    std,
                    self.config.method.collapse_threshold,
                )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        bank = getattr(getattr(self.method, "criterion", None), "memory_bank", None)
        if bank is not None and getattr(bank, "size", (0,)) != (0,):
            checkpoint[_BANK] = {
                "bank": bank.bank.detach().cpu().clone(),
                "bank_ptr": bank.bank_ptr.detach().cpu().clone(),
            }
        checkpoint["slicewise_collapsed"] = bool(self.collapsed)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        bank = getattr(getattr(self.method, "criterion", None), "memory_bank", None)
        saved = checkpoint.get(_BANK)
        if bank is not None and saved is not None:
            bank.bank = saved["bank"].to(bank.bank.device)
            bank.bank_ptr = saved["bank_ptr"].to(bank.bank_ptr.device)
        self.collapsed = bool(checkpoint.get("slicewise_collapsed", False))

    def configure_optimizers(self) -> dict[str, Any]:
        """:func:`~slicewise.training.module.adamw_with_schedule` over the method's trainable parameters."""
        return adamw_with_schedule(self.method.parameters(), self.config.optim, self.config.trainer.max_steps)
