"""Tiny stand-in segmentation models keeping the SegmentationModel contract (docs/ARCHITECTURE.md)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn


class TinyEncoder(nn.Module):
    """Two conv stages returning a feature list, like a timm ``features_only`` encoder."""

    def __init__(self, in_ch: int) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_ch, 4, 3, padding=1)
        self.stage2 = nn.Sequential(nn.ReLU(), nn.Conv2d(4, 6, 3, stride=2, padding=1), nn.ReLU())

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        f1 = self.stem(x)
        return [f1, self.stage2(f1)]


class TinyDecoder(nn.Module):
    def __init__(self, classes: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            [
                nn.Sequential(nn.Conv2d(6, 4, 3, padding=1), nn.ReLU()),
                nn.Sequential(nn.Conv2d(8, 4, 3, padding=1), nn.ReLU()),
            ]
        )
        self.head = nn.Conv2d(4, classes, 1)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        f1, f2 = feats
        y = self.blocks[0](f2)
        y = nn.functional.interpolate(y, scale_factor=2.0, mode="nearest")
        y = self.blocks[1](torch.cat([y, f1], 1))
        return self.head(y)


class TinySeg(nn.Module):
    """k-slice input in [0, 1], normalized inside, 2-class logits."""

    def __init__(self, in_slices: int = 3, classes: int = 2, colors: int = 1) -> None:
        super().__init__()
        self.in_slices = in_slices
        self.in_channels = in_slices * colors
        self.out_channels = classes
        self.heads = {"seg": slice(0, classes)}
        self.size_divisor = 2
        self.encoder = TinyEncoder(self.in_channels)
        self.decoder = TinyDecoder(classes)

    def check_input_size(self, h: int, w: int) -> None:
        assert h % 2 == 0 and w % 2 == 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder((x - 0.5) / 0.25))


def make_tiny(seed: int = 0) -> TinySeg:
    """A seeded TinySeg whose head bias centres the class logits (both classes get predicted)."""
    torch.manual_seed(seed)
    model = TinySeg().eval()
    with torch.no_grad():
        logits = model(torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(seed)))
        model.decoder.head.bias -= logits.mean(dim=(0, 2, 3))
    return model


@pytest.fixture
def tiny_model() -> TinySeg:
    return make_tiny(0)


@pytest.fixture
def tiny_rgb_model() -> TinySeg:
    """One RGB slice (k = 1, 3 input channels)."""
    torch.manual_seed(0)
    return TinySeg(in_slices=1, colors=3).eval()


@pytest.fixture(scope="session")
def tiny_factory():
    """``make_tiny`` for module-scoped fixtures."""
    return make_tiny


@pytest.fixture
def tiny_volume() -> np.ndarray:
    """A smooth seeded uint8 volume 6×40×40 with structure in every slice."""
    rng = np.random.default_rng(0)
    z, y, x = np.mgrid[0:6, 0:40, 0:40]
    base = 127 + 60 * np.sin(x / 4.0 + z) * np.cos(y / 5.0) + rng.normal(0, 10, size=z.shape)
    return np.clip(base, 0, 255).astype(np.uint8)
