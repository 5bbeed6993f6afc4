"""ViT encoders (SAM ViT-B and any timm ViT with ``forward_intermediates``) for the U-Net.

A plain ViT has one stride (its patch size P, 16 for SAM). Following UNETR / EM-SAM, four
intermediate blocks (evenly spaced: blocks 3, 6, 9, 12 of a 12-block ViT-B, i.e. indices
2, 5, 8, 11) give four P-stride maps; the deepest stays at stride P and the others climb a
deconvolution ladder (``ConvTranspose2d`` ×2 + 3×3 conv–norm–ReLU per step) to strides P/2,
P/4, P/8 (8, 4, 2 for P = 16), so the same U-shaped decoder serves CNNs and ViTs.

Input sizes: timm's SAM ViT (``samvit_*``) pads window attention to its 14-token windows,
resamples the absolute position embedding and interpolates the relative position tables to
the token grid on every forward pass, so it takes any H, W that are multiples of the patch
size (16), not only its build size (``img_size``, 1024 for SAM). Inputs at the build size use
the stored embeddings unchanged; other sizes use resampled ones (what pretrained SAM saw
only at 1024). Other timm ViTs are built with ``dynamic_img_size=True`` to behave alike.
Weights for a build size other than the checkpoint's are resampled when they load.

Speed: every attention block runs PyTorch's fused ``scaled_dot_product_attention``
(timm's fused path, switched on whatever ``TIMM_FUSED_ATTN`` says), and the relative-position
lookup of SAM's decomposed bias uses an index table computed once per token grid and device
(:class:`CachedRelPosAttention`) instead of timm's per-forward ``arange`` on the host (which on a
GPU is a host→device copy in every block of every forward). At the build size nothing is resampled
per forward: timm returns the stored absolute embedding as is and the relative tables already have
the window's length. Outputs equal timm's forward bit for bit (tested).

The small SAM-architecture ViT for fast tests (``slicewise_samvit_tiny_patch16``) lives in
:mod:`slicewise.models.tiny_sam`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from timm.layers import resample_abs_pos_embed_nhwc
from timm.models.vision_transformer_sam import Attention as SamAttention
from timm.models.vision_transformer_sam import get_rel_pos
from torch import nn

from slicewise.errors import WeightsError
from slicewise.models.encoders import create_timm, find_module_path, pretrained_cfg

LADDER_CHANNELS = (64, 128, 256)


def intermediate_indices(depth: int, n: int = 4) -> list[int]:
    """Evenly spaced block indices ending at the last block (12 blocks → [2, 5, 8, 11])."""
    return [depth * (i + 1) // n - 1 for i in range(n)]


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(cin, cout, 2, stride=2),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def fit_vit_state_dict(sd: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Resample position embeddings of a (timm-keyed) ViT state dict to ``model``'s token grid.

    ``pos_embed`` (1, h, w, C) is resampled as timm does at run time; relative position tables
    ``rel_pos_h/w`` (2n−1, C) are interpolated linearly as SAM's ``get_rel_pos`` does.
    """
    target = model.state_dict()
    out = dict(sd)
    for key, v in sd.items():
        if key not in target or target[key].shape == v.shape:
            continue
        shape = target[key].shape
        if key.endswith("pos_embed") and v.ndim == 4:
            out[key] = resample_abs_pos_embed_nhwc(v, shape[1:3])
        elif key.split(".")[-1] in ("rel_pos_h", "rel_pos_w") and v.ndim == 2:
            out[key] = F.interpolate(v.T[None], size=shape[0], mode="linear").squeeze(0).T.contiguous()
    return out


class CachedRelPosAttention(SamAttention):
    """timm's SAM attention with the relative-position index table cached per (token grid, device).

    ``forward`` is timm's (same operations in the same order, fused SDPA), except that
    ``get_rel_pos``'s index ``(q − k) + (k − 1)`` comes from a cache when the table needs no
    interpolation (always at the build size); other sizes fall back to timm's ``get_rel_pos``.
    The cache is a plain dict, not a buffer: state dicts are unchanged."""

    def _rel_index(self, q_size: int, k_size: int, device: torch.device) -> torch.Tensor:
        cache: dict[tuple[int, int, str], torch.Tensor] = self.__dict__.setdefault("_rel_cache", {})
        key = (q_size, k_size, str(device))
        if key not in cache:
            q = torch.arange(q_size, dtype=torch.float32)[:, None] * max(k_size / q_size, 1.0)
            k = torch.arange(k_size, dtype=torch.float32)[None, :] * max(q_size / k_size, 1.0)
            cache[key] = ((q - k) + (k_size - 1) * max(q_size / k_size, 1.0)).long().to(device)
        return cache[key]

    def _rel_pos(self, q_size: int, k_size: int, table: torch.Tensor) -> torch.Tensor:
        if table.shape[0] != int(2 * max(q_size, k_size) - 1):
            return get_rel_pos(q_size, k_size, table)
        return table[self._rel_index(q_size, k_size, table.device)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, _ = x.shape
        n = h * w
        x = x.reshape(b, n, -1)
        qkv = self.qkv(x).view(b, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.reshape(3, b * self.num_heads, n, -1).unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        bias = None
        if self.use_rel_pos:
            rh, rw = self._rel_pos(h, h, self.rel_pos_h), self._rel_pos(w, w, self.rel_pos_w)
            r_q = q.reshape(q.shape[0], h, w, q.shape[-1])
            rel_h = torch.einsum("bhwc,hkc->bhwk", r_q, rh)
            rel_w = torch.einsum("bhwc,wkc->bhwk", r_q, rw)
            bias = (rel_h[:, :, :, :, None] + rel_w[:, :, :, None, :]).reshape(-1, n, n)
        elif self.rope is not None:
            return super().forward(x.view(b, h, w, -1))
        x = F.scaled_dot_product_attention(
            q, k, v, attn_mask=bias, dropout_p=self.attn_drop.p if self.training else 0.0
        )
        x = x.view(b, self.num_heads, n, -1).transpose(1, 2).reshape(b, n, -1)
        x = self.proj_drop(self.proj(x))
        return x.view(b, h, w, -1)


def speed_up_attention(vit: nn.Module) -> int:
    """Switch every SAM attention block of ``vit`` to :class:`CachedRelPosAttention` (fused SDPA, cached
    relative-position index) and every other timm attention block to its fused path; returns how many
    blocks changed. Parameters and state-dict keys stay as they are."""
    changed = 0
    for m in vit.modules():
        if type(m) is SamAttention:
            m.__class__ = CachedRelPosAttention
            m.fused_attn = True
            changed += 1
        elif hasattr(m, "fused_attn") and not m.fused_attn:
            m.fused_attn = True
            changed += 1
    return changed


class ViTEncoder(nn.Module):
    """timm ViT → features at strides P/8, P/4, P/2, P (ascending) via a deconvolution ladder."""

    kind = "vit"

    def __init__(
        self,
        name: str,
        overlay: dict[str, Any] | None = None,
        img_size: int | None = None,
        in_chans: int = 3,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        self.name = name
        cfg = pretrained_cfg(name)
        native = int(cfg.get("input_size", (3, 224, 224))[-1])
        size = img_size or native
        self.img_size = size
        build = dict(num_classes=0, in_chans=in_chans, img_size=size, **kwargs)
        if overlay is not None and size != native:
            overlay = self._resampled_overlay(name, overlay, native, build)
        try:
            self.vit = create_timm(name, overlay, dynamic_img_size=True, **build)
        except TypeError:
            self.vit = create_timm(name, overlay, **build)
        speed_up_attention(self.vit)
        info = self.vit.feature_info
        self.patch = int(info[-1]["reduction"])
        dim = int(info[-1]["num_chs"])
        self.indices = intermediate_indices(len(self.vit.blocks))
        steps = int(math.log2(self.patch))
        if steps < 3:
            raise WeightsError(f"{name} has patch size {self.patch}: the ladder needs patch size >= 8")
        ladders = []
        for level in range(3):
            n_up = 3 - level
            chans = [dim] + [LADDER_CHANNELS[level + n_up - 1 - j] for j in range(n_up)]
            ladders.append(nn.Sequential(*[_up(chans[j], chans[j + 1]) for j in range(n_up)]))
        self.ladders = nn.ModuleList(ladders)
        self.channels: tuple[int, ...] = (*LADDER_CHANNELS, dim)
        self.reductions: tuple[int, ...] = (self.patch // 8, self.patch // 4, self.patch // 2, self.patch)
        pcfg = self.vit.pretrained_cfg
        self.mean: tuple[float, ...] = tuple(pcfg["mean"])
        self.std: tuple[float, ...] = tuple(pcfg["std"])
        self.first_conv = "vit." + find_module_path(self.vit, pcfg["first_conv"])

    @staticmethod
    def _resampled_overlay(name: str, overlay: dict[str, Any], native: int, build: dict[str, Any]) -> dict[str, Any]:
        """Load the weights at the checkpoint's size, return them resampled for ``build``."""
        native_model = create_timm(name, overlay, **{**build, "img_size": native})
        with torch.device("meta"):
            target = create_timm(name, None, **build)
        return {"state_dict": fit_vit_state_dict(native_model.state_dict(), target)}

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, C, H, W), H and W multiples of the patch size → 4 maps, ascending stride."""
        feats = self.vit.forward_intermediates(x, indices=self.indices, intermediates_only=True)
        return [ladder(f) for ladder, f in zip(self.ladders, feats[:3])] + [feats[3]]
