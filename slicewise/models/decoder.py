"""U-Net decoder over any encoder's feature pyramid, with a per-level skip mask and heads.

Levels and the skip mask: decoder level L_i (i = 1, 2, ...) is the stage whose output has
stride 2^i; ``skips[i-1]`` ("1" keep / "0" prune) governs the skip connection from the encoder
feature at stride 2^i. The string is read top-down: L1 (stride 2, uppermost, highest
resolution) first, so "0111" prunes only the stride-2 skip. A level where the encoder has no
feature (ConvNeXt has none at stride 2; the deepest feature is the bottleneck, never a skip)
has no skip whatever its character says; :attr:`UNetDecoder.skip_strides` lists the live ones.

Blocks: from the deepest feature (stride S), log2(S) blocks each upsample ×2 (nearest), then
concatenate the skip of that stride if live, then apply two 3×3 conv–norm–ReLU layers with
``decoder_channels[b]`` outputs (block b = 0 is the deepest). A pruned skip removes the
concatenation: block b's first conv then takes ``in`` instead of ``in + skip`` channels, so the
model has exactly ``9 · skip_channels · decoder_channels[b]`` fewer weights for that level.
The last block ends at full resolution (stride 1), so any stride set works. Only channels_last
friendly ops are used (conv, norm, ReLU, nearest interpolation, cat on dim 1).

Heads: one 3×3 conv from the last block to C class logits plus one channel per extra head
(``boundary``, ``distance``), concatenated in that order; ``head_slices`` names them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from slicewise.errors import ConfigError

NORMS = ("batch", "group", "instance", "none")


def make_norm(kind: str, channels: int) -> nn.Module:
    """Normalisation layer: batch, group (gcd(32, C) groups), instance (affine) or none."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(math.gcd(32, channels), channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "none":
        return nn.Identity()
    raise ConfigError(f"unknown decoder_norm {kind!r}: use one of {', '.join(NORMS)}")


def conv_norm_act(cin: int, cout: int, norm: str) -> nn.Sequential:
    """3×3 conv (bias only without norm) → norm → ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=norm == "none"), make_norm(norm, cout), nn.ReLU(inplace=True)
    )


def head_slices(classes: int, extra_heads: tuple[str, ...] = ()) -> dict[str, slice]:
    """Output channel slices: ``seg`` first (C classes), then each extra head (1 channel)."""
    out = {"seg": slice(0, classes)}
    for i, name in enumerate(extra_heads):
        out[name] = slice(classes + i, classes + i + 1)
    return out


class DecoderBlock(nn.Module):
    """Upsample ×2, concatenate an optional skip, two conv–norm–ReLU layers."""

    def __init__(self, cin: int, skip: int, cout: int, norm: str) -> None:
        super().__init__()
        self.skip_channels = skip
        self.conv1 = conv_norm_act(cin + skip, cout, norm)
        self.conv2 = conv_norm_act(cout, cout, norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.conv2(self.conv1(x))


class UNetDecoder(nn.Module):
    """U-Net decoder for features at ``reductions`` (ascending, powers of two) → logits."""

    def __init__(
        self,
        channels: tuple[int, ...],
        reductions: tuple[int, ...],
        skips: str = "1111",
        decoder_channels: tuple[int, ...] = (256, 128, 64, 32, 16),
        norm: str = "batch",
        classes: int = 2,
        extra_heads: tuple[str, ...] = (),
    ) -> None:
        super().__init__()
        if any(r & (r - 1) for r in reductions) or list(reductions) != sorted(set(reductions)):
            raise ConfigError(
                f"encoder strides {reductions} must be distinct powers of two: this encoder cannot feed the U-Net "
                "decoder"
            )
        make_norm(norm, 8)
        deepest = reductions[-1]
        n_blocks = int(math.log2(deepest))
        skip_levels = [r for r in reductions[:-1] if r >= 2]
        need = int(math.log2(max(skip_levels))) if skip_levels else 0
        if len(skips) < need:
            raise ConfigError(
                f"skips={skips!r} has {len(skips)} level(s) but this encoder has skips up to stride "
                f"{max(skip_levels)}: give {need} "
                f"characters (L1 = stride 2 first), e.g. {'1' * need!r}"
            )
        if len(decoder_channels) < n_blocks:
            raise ConfigError(
                f"decoder_channels {tuple(decoder_channels)} has {len(decoder_channels)} entries but this encoder "
                f"(stride {deepest}) "
                f"needs {n_blocks} (one per ×2 upsampling)"
            )
        by_stride = dict(zip(reductions, channels))
        self.skip_strides: tuple[int, ...] = tuple(r for r in skip_levels if skips[int(math.log2(r)) - 1] == "1")
        self.feature_index = {r: i for i, r in enumerate(reductions)}
        self.blocks = nn.ModuleList()
        self.block_strides: list[int] = []
        cin = channels[-1]
        for b in range(n_blocks):
            stride = deepest >> (b + 1)
            skip = by_stride[stride] if stride in self.skip_strides else 0
            self.blocks.append(DecoderBlock(cin, skip, decoder_channels[b], norm))
            self.block_strides.append(stride)
            cin = decoder_channels[b]
        self.heads = head_slices(classes, tuple(extra_heads))
        self.out_channels = classes + len(extra_heads)
        self.head = nn.Conv2d(cin, self.out_channels, 3, padding=1)
        self.size_divisor = deepest

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Feature maps (ascending stride) → (B, out_channels, H, W) at stride 1."""
        x = features[-1]
        for block, stride in zip(self.blocks, self.block_strides):
            skip = features[self.feature_index[stride]] if stride in self.skip_strides else None
            x = block(x, skip)
        return self.head(x)
