"""Training losses and the auxiliary targets derived from instance labels.

Segmentation head ("seg", C channels of raw logits): ``ce_weight · CE + dice_weight · (1 − soft Dice)``.

- CE: :func:`torch.nn.functional.cross_entropy` with optional per-class weights and ignore index.
- Soft Dice: softmax probabilities p, one-hot target g; per class c, over the whole batch
  (all images and pixels together, nnU-Net "batch Dice"):
  ``D_c = (2 Σ p_c g_c + ε) / (Σ p_c + Σ g_c + ε)`` with ``ε = 1``; the loss is ``1 − mean_c D_c``
  over the classes in ``dice_classes`` (default: every class; a class absent from target and
  prediction counts as Dice 1). Pixels equal to ``ignore_index`` are left out of both sums.

Boundary head (one channel of logits): BCE-with-logits against the boundary map, plus optional
soft Dice of ``sigmoid(logit)``. Distance head (one raw channel): MSE or Smooth-L1 against the
normalized distance map. Ignored pixels are left out of both.

Targets from instance labels (2-D, per slice; 0 is background, other values are instance ids):

- **boundary** = pixels whose 4-neighbour (up, down, left, right, inside the image) carries a
  different instance id (background counts as an id, so object rims against background are
  boundary too; the image edge is not) — :func:`boundary_map`.
- **distance** = :func:`scipy.ndimage.distance_transform_edt` computed per instance (distance to
  the nearest pixel outside that instance; the image edge is *not* a boundary), divided by the
  instance's maximum so each instance spans (0, 1]; background is 0 — :func:`distance_map`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage as ndi
from skimage.segmentation import find_boundaries

from slicewise.config import LossConfig

DICE_EPS = 1.0


def boundary_map(instances: np.ndarray) -> np.ndarray:
    """Boundary mask (bool, shape of the 2-D ``instances``): a pixel whose 4-neighbour carries a
    different id (``skimage.segmentation.find_boundaries``, connectivity 1, mode "thick")."""
    return find_boundaries(np.asarray(instances), connectivity=1, mode="thick")


def distance_map(instances: np.ndarray) -> np.ndarray:
    """Per-instance normalized Euclidean distance transform (float32 in [0, 1], 2-D Y×X).

    Each instance (id > 0) gets ``distance_transform_edt`` of its own mask divided by its maximum;
    background (id 0) is 0. The image edge is not treated as a boundary."""
    lab = np.asarray(instances)
    out = np.zeros(lab.shape, dtype=np.float32)
    for idx, box in enumerate(ndi.find_objects(lab.astype(np.int64, copy=False)), start=1):
        if box is None:
            continue
        grown = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in box)
        mask = lab[grown] == idx
        padded = np.pad(mask, 1, mode="edge")  # the crop edge continues the instance: not a boundary
        if padded.all():
            out[grown][mask] = 1.0
            continue
        edt = ndi.distance_transform_edt(padded)[1:-1, 1:-1]
        out[grown][mask] = (edt[mask] / edt[mask].max()).astype(np.float32)
    return out


def soft_dice_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    ignore_index: int | None = None,
    classes: Sequence[int] | None = None,
    eps: float = DICE_EPS,
) -> torch.Tensor:
    """``1 − mean_c D_c`` (see the module docstring) for logits (B, C, H, W) and an index target (B, H, W)."""
    probs = logits.float().softmax(dim=1)
    n_classes = probs.shape[1]
    valid = torch.ones_like(target, dtype=torch.bool) if ignore_index is None else target != ignore_index
    safe = torch.where(valid, target, torch.zeros_like(target))
    onehot = F.one_hot(safe.long(), n_classes).permute(0, 3, 1, 2).to(probs.dtype)
    weight = valid.unsqueeze(1).to(probs.dtype)
    probs, onehot = probs * weight, onehot * weight
    dims = (0, 2, 3)
    inter = (probs * onehot).sum(dims)
    denom = probs.sum(dims) + onehot.sum(dims)
    dice = (2 * inter + eps) / (denom + eps)
    if classes is not None:
        dice = dice[list(classes)]
    return 1 - dice.mean()


def binary_soft_dice_loss(
    logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None, eps: float = DICE_EPS
) -> torch.Tensor:
    """``1 − D`` of ``sigmoid(logits)`` against a {0, 1} map of the same shape (batch Dice)."""
    p = logits.float().sigmoid()
    t = target.float()
    if valid is not None:
        p, t = p * valid, t * valid
    return 1 - (2 * (p * t).sum() + eps) / (p.sum() + t.sum() + eps)


class SegmentationLoss(torch.nn.Module):
    """Total loss over the model's heads; returns ``(total, parts)`` with one scalar per term.

    ``heads`` maps head name → channel slice of the network output (``model.heads``). The batch
    dict carries ``"target"`` (B, H, W) int64 class indices and, for the extra heads,
    ``"boundary"`` (B, 1, H, W) {0, 1} and ``"distance"`` (B, 1, H, W) in [0, 1].
    """

    def __init__(self, heads: dict[str, slice], weights: LossConfig | None = None) -> None:
        super().__init__()
        self.heads = dict(heads)
        self.w = weights or LossConfig()
        cw = self.w.class_weights
        self.register_buffer("class_weights", torch.tensor(cw, dtype=torch.float32) if cw else None, persistent=False)

    def forward(
        self, output: torch.Tensor, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Loss of the raw network ``output`` (B, out_channels, H, W) against the targets in ``batch``."""
        w = self.w
        target = batch["target"].long()
        seg = output[:, self.heads["seg"]].float()
        parts: dict[str, torch.Tensor] = {}
        ignore = -100 if w.ignore_index is None else w.ignore_index
        if w.ce:
            parts["ce"] = F.cross_entropy(seg, target, weight=self.class_weights, ignore_index=ignore)
        if w.dice:
            parts["dice"] = soft_dice_loss(seg, target, w.ignore_index, w.dice_classes)
        valid = None if w.ignore_index is None else (target != w.ignore_index).unsqueeze(1).float()
        if "boundary" in self.heads and w.boundary:
            logit = output[:, self.heads["boundary"]].float()
            bt = batch["boundary"].float()
            bce = F.binary_cross_entropy_with_logits(logit, bt, weight=valid)
            parts["boundary"] = bce
            if w.boundary_dice:
                parts["boundary_dice"] = binary_soft_dice_loss(logit, bt, valid)
        if "distance" in self.heads and w.distance:
            pred = output[:, self.heads["distance"]].float()
            dt = batch["distance"].float()
            fn = F.mse_loss if w.distance_loss == "mse" else F.smooth_l1_loss
            err = fn(pred, dt, reduction="none")
            parts["distance"] = err.mean() if valid is None else (err * valid).sum() / valid.sum().clamp_min(1)
        scale = {
            "ce": w.ce,
            "dice": w.dice,
            "boundary": w.boundary,
            "boundary_dice": w.boundary * w.boundary_dice,
            "distance": w.distance,
        }
        total = sum(scale[k] * v for k, v in parts.items())
        return total, parts
