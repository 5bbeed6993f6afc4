"""A tiny stand-in for SegmentationModel (same attributes and forward contract), for fast CPU tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from slicewise.errors import InputError


class StubModel(nn.Module):
    """``forward(x) -> (B, out_channels, H, W)``; heads ``seg`` (2 classes) + ``distance`` (1 channel).

    kind="conv": a seeded 3×3 convolution (position-dependent output, for equality tests);
    kind="plus_one": seg logits constant (1, 0), distance = centre slice + 1 (the MONAI-style check).
    ``calls`` counts the tiles seen; ``fail_after`` raises once that many tiles were seen.
    """

    def __init__(
        self, in_slices: int = 3, colors: int = 1, kind: str = "conv", size_divisor: int = 8, extra: str = "distance"
    ) -> None:
        super().__init__()
        self.in_slices, self.in_channels = in_slices, in_slices * colors
        self.colors = colors
        self.out_channels = 3
        self.heads = {"seg": slice(0, 2), extra: slice(2, 3)}
        self.size_divisor = size_divisor
        self.kind = kind
        torch.manual_seed(0)
        self.conv = nn.Conv2d(self.in_channels, 3, 3, padding=1)
        self.calls = 0
        self.fail_after: int | None = None

    def check_input_size(self, h: int, w: int) -> None:
        if h % self.size_divisor or w % self.size_divisor:
            raise InputError(f"input {h}x{w} must be a multiple of {self.size_divisor}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[1] == self.in_channels and x.dtype == torch.float32
        self.calls += x.shape[0]
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("simulated crash")
        if self.kind == "plus_one":
            r = self.in_slices // 2
            centre = x[:, r * self.colors : r * self.colors + 1]
            seg = torch.cat([torch.ones_like(centre), torch.zeros_like(centre)], 1)
            return torch.cat([seg, centre + 1], 1)
        return self.conv(x)


@pytest.fixture(scope="session")
def stub() -> type[StubModel]:
    return StubModel


@pytest.fixture
def small_volume() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (7, 40, 52), dtype=np.uint8)
