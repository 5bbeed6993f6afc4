"""The backbone and the self-supervised methods; heads, losses and momentum updates come from lightly.

- :class:`Backbone`: the encoder fine-tuning uses (``slicewise.models.build.build_adapted_encoder``:
  timm encoder, start weights, the first-layer channel strategy, the strategy's normalization), whose
  deepest feature map is averaged over space into the embedding (dimension = its channels).
- ``mocov2`` (:class:`MoCoV2`, CEM500K's recipe): query = projection of the backbone on view 1, key = the
  momentum (EMA) copy on view 2; lightly's ``NTXentLoss`` with a memory bank of negatives (InfoNCE),
  ``MoCoProjectionHead``, ``update_momentum`` / ``deactivate_requires_grad``.
- ``byol`` (:class:`BYOL`): lightly's BYOL projection / prediction heads, ``NegativeCosineSimilarity``,
  symmetrized; momentum cosine-scheduled from ``method.momentum`` to 1 (``cosine_schedule``).
- ``vicreg`` (:class:`VICReg`): lightly's ``VICRegLoss`` on the projections (``VICRegProjectionHead``).
- ``mim`` (:class:`MIM`): masked image modelling, SimMIM-style (Xie et al. 2022) rather than MAE: MAE
  drops the masked tokens, which SAM's windowed attention and neck cannot take (they need the full token
  grid); SimMIM keeps the grid, so it serves ViT and CNN encoders alike. One view, no momentum copy.

A method's ``loss(x1, x2, step, total)`` returns ``(loss, embeddings)`` — the backbone embeddings of
view 1 (``mim``: of the masked view 1), for the collapse signal. Momentum copies are submodules, so
checkpoints hold them; the MoCo memory bank (a non-persistent buffer in lightly) is saved by the
LightningModule.
"""

from __future__ import annotations

import copy

import torch
from lightly.loss import NegativeCosineSimilarity, NTXentLoss, VICRegLoss
from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead, MoCoProjectionHead
from lightly.models.modules.heads import VICRegProjectionHead
from lightly.models.utils import deactivate_requires_grad, random_token_mask, update_momentum
from lightly.utils.scheduler import cosine_schedule
from torch import nn

from slicewise.config import FIRST_LAYER_STRATEGIES, ModelConfig, PretrainMethodConfig, PretrainModelConfig
from slicewise.errors import ConfigError
from slicewise.models.build import build_adapted_encoder

__all__ = ["BYOL", "METHODS", "MIM", "Backbone", "MoCoV2", "VICReg", "build_backbone", "build_method"]


class Backbone(nn.Module):
    """Normalization (per the channel strategy) + encoder + global average pool of the deepest map.

    ``forward(x)``: (B, k·colors, H, W) float in [0, 1] → (B, ``dim``) embeddings.
    ``encoder`` is the slicewise encoder (``first_conv``, ``name``) that the weights file stores;
    ``channel_init`` / ``colors``: its first-layer strategy and colors per slice (plain attributes).
    """

    def __init__(
        self,
        encoder: nn.Module,
        mean: torch.Tensor,
        std: torch.Tensor,
        channel_init: str | None = None,
        colors: int = 1,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.channel_init = channel_init
        self.colors = colors
        self.register_buffer("mean", mean.reshape(1, -1, 1, 1).clone())
        self.register_buffer("std", std.reshape(1, -1, 1, 1).clone())
        self.dim = int(encoder.channels[-1])

    @property
    def first_layer(self) -> nn.Module:
        """The encoder's adapted first layer."""
        return self.encoder.get_submodule(self.encoder.first_conv)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` as the encoder sees it (per-channel mean / std of the strategy)."""
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.encoder(self.normalize(x))
        return feats[-1].float().mean(dim=(2, 3))


def model_config(model: PretrainModelConfig) -> ModelConfig:
    """The fine-tuning :class:`ModelConfig` of the encoder settings of a pretraining run."""
    return ModelConfig(
        encoder=model.encoder,
        weights=model.weights,
        in_slices=model.in_slices,
        colors=model.colors,
        channel_init=model.channel_init,
        img_size=model.img_size,
    )


def build_backbone(model: PretrainModelConfig) -> Backbone:
    """The :class:`Backbone` of ``model``, built exactly as fine-tuning builds its encoder."""
    encoder, mean, std = build_adapted_encoder(model_config(model))
    return Backbone(encoder, mean, std, channel_init=model.channel_init, colors=model.colors)


class MoCoV2(nn.Module):
    """MoCo v2: query encoder + projection, momentum key encoder, InfoNCE with a memory bank."""

    def __init__(self, backbone: Backbone, cfg: PretrainMethodConfig) -> None:
        super().__init__()
        hidden = cfg.hidden_dim or backbone.dim
        self.backbone = backbone
        self.projection = MoCoProjectionHead(backbone.dim, hidden, cfg.output_dim)
        self.backbone_momentum = copy.deepcopy(backbone)
        self.projection_momentum = copy.deepcopy(self.projection)
        deactivate_requires_grad(self.backbone_momentum)
        deactivate_requires_grad(self.projection_momentum)
        bank = (cfg.memory_bank, cfg.output_dim) if cfg.memory_bank else 0
        self.criterion = NTXentLoss(temperature=cfg.temperature, memory_bank_size=bank)
        self.momentum = cfg.momentum

    def loss(self, x1: torch.Tensor, x2: torch.Tensor, step: int, total: int) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.backbone(x1)
        query = self.projection(h)
        with torch.no_grad():
            update_momentum(self.backbone, self.backbone_momentum, m=self.momentum)
            update_momentum(self.projection, self.projection_momentum, m=self.momentum)
            key = self.projection_momentum(self.backbone_momentum(x2)).detach()
        return self.criterion(query.float(), key.float()), h


class BYOL(nn.Module):
    """BYOL: online backbone + projection + prediction, momentum target, symmetrized negative cosine."""

    def __init__(self, backbone: Backbone, cfg: PretrainMethodConfig) -> None:
        super().__init__()
        hidden = cfg.hidden_dim or backbone.dim
        self.backbone = backbone
        self.projection = BYOLProjectionHead(backbone.dim, hidden, cfg.output_dim)
        self.prediction = BYOLPredictionHead(cfg.output_dim, hidden, cfg.output_dim)
        self.backbone_momentum = copy.deepcopy(backbone)
        self.projection_momentum = copy.deepcopy(self.projection)
        deactivate_requires_grad(self.backbone_momentum)
        deactivate_requires_grad(self.projection_momentum)
        self.criterion = NegativeCosineSimilarity()
        self.momentum = cfg.momentum

    def _target(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection_momentum(self.backbone_momentum(x)).detach()

    def loss(self, x1: torch.Tensor, x2: torch.Tensor, step: int, total: int) -> tuple[torch.Tensor, torch.Tensor]:
        m = cosine_schedule(step, max(total, 1), self.momentum, 1.0)
        with torch.no_grad():
            update_momentum(self.backbone, self.backbone_momentum, m=m)
            update_momentum(self.projection, self.projection_momentum, m=m)
            t1, t2 = self._target(x1), self._target(x2)
        h1 = self.backbone(x1)
        p1 = self.prediction(self.projection(h1))
        p2 = self.prediction(self.projection(self.backbone(x2)))
        return 0.5 * (self.criterion(p1.float(), t2.float()) + self.criterion(p2.float(), t1.float())), h1


class VICReg(nn.Module):
    """VICReg: variance-invariance-covariance regularization of the two views' projections."""

    def __init__(self, backbone: Backbone, cfg: PretrainMethodConfig) -> None:
        super().__init__()
        hidden = cfg.hidden_dim or backbone.dim
        self.backbone = backbone
        self.projection = VICRegProjectionHead(backbone.dim, hidden, cfg.output_dim, num_layers=3)
        self.criterion = VICRegLoss(
            lambda_param=cfg.vicreg_invariance, mu_param=cfg.vicreg_variance, nu_param=cfg.vicreg_covariance
        )

    def loss(self, x1: torch.Tensor, x2: torch.Tensor, step: int, total: int) -> tuple[torch.Tensor, torch.Tensor]:
        h1 = self.backbone(x1)
        z1, z2 = self.projection(h1), self.projection(self.backbone(x2))
        return self.criterion(z1.float(), z2.float()), h1


class MIM(nn.Module):
    """SimMIM masked image modelling: reconstruct masked patches of the normalized input from the full grid.

    A fraction ``mask_ratio`` of the patches (side P = the encoder's deepest stride: 16 for SAM ViT, 32 for
    CNNs; chosen by lightly's ``random_token_mask`` on the P-grid) of the normalized input takes a learnable
    mask value per input channel — one per color, shared by all slices, under ``mirror`` / ``uniform``
    (so a masked stack stays symmetric over slice reversal). The deepest feature map is decoded by a 1×1
    convolution to P²·channels values per token and ``nn.PixelShuffle(P)`` back to the image; the loss is
    the L1 error on the masked pixels only. ``x2`` is unused; the embeddings returned are those of the
    masked ``x1`` (pooled from the same forward pass, no second one). The weights file stores
    ``backbone.encoder`` only: the mask value and the decoder are left out.
    """

    def __init__(self, backbone: Backbone, cfg: PretrainMethodConfig) -> None:
        super().__init__()
        self.backbone = backbone
        self.patch = int(max(backbone.encoder.reductions))
        self.mask_ratio = cfg.mask_ratio
        channels = int(backbone.mean.numel())
        # strategies whose slices start equal learn one mask value per color, shared by every slice
        self.shared = FIRST_LAYER_STRATEGIES[backbone.channel_init].equal_slices
        self.mask_value = nn.Parameter(torch.zeros(backbone.colors if self.shared else channels))
        self.decoder = nn.Sequential(nn.Conv2d(backbone.dim, self.patch**2 * channels, 1), nn.PixelShuffle(self.patch))

    def mask_values(self, channels: int) -> torch.Tensor:
        """The mask value of each input channel, shape (1, channels, 1, 1)."""
        v = self.mask_value.repeat(channels // self.mask_value.numel()) if self.shared else self.mask_value
        return v.reshape(1, channels, 1, 1)

    def random_mask(self, n: int, height: int, width: int, device: torch.device) -> torch.Tensor:
        """A (n, 1, height, width) float mask, 1 on the masked patches (global torch RNG)."""
        h, w = height // self.patch, width // self.patch
        _, idx = random_token_mask((n, h * w), self.mask_ratio, mask_class_token=True, device=device)
        grid = torch.zeros((n, h * w), device=device).scatter_(1, idx, 1.0).reshape(n, 1, h, w)
        return grid.repeat_interleave(self.patch, 2).repeat_interleave(self.patch, 3)

    def reconstruct(self, z: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(prediction of the normalized input ``z``, embeddings) from ``z`` masked by ``mask``."""
        masked = torch.lerp(z, self.mask_values(z.shape[1]).to(z.dtype), mask.to(z.dtype))
        feats = self.backbone.encoder(masked)[-1]
        return self.decoder(feats).float(), feats.float().mean(dim=(2, 3))

    def masked_l1(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean absolute error over the masked pixels (all channels) only."""
        err = (pred - target.float()).abs() * mask
        return err.sum() / (mask.sum() * target.shape[1]).clamp_min(1.0)

    def loss(self, x1: torch.Tensor, x2: torch.Tensor, step: int, total: int) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.backbone.normalize(x1)
        mask = self.random_mask(z.shape[0], z.shape[2], z.shape[3], z.device)
        pred, emb = self.reconstruct(z, mask)
        return self.masked_l1(pred, z, mask), emb


METHODS: dict[str, type[nn.Module]] = {"mocov2": MoCoV2, "byol": BYOL, "vicreg": VICReg, "mim": MIM}


def build_method(backbone: Backbone, cfg: PretrainMethodConfig) -> nn.Module:
    """The method ``cfg.name`` around ``backbone``."""
    if cfg.name not in METHODS:
        raise ConfigError(f"unknown method.name {cfg.name!r}: use one of {', '.join(METHODS)}")
    return METHODS[cfg.name](backbone, cfg)
