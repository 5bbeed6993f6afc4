"""A tiny training configuration shared by the training tests (CPU, seconds)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

TINY: dict[str, Any] = {
    "seed": 0,
    "data": {
        "synthetic": {"shape": [10, 64, 64], "seed": 0},
        "patch_size": 64,
        "batch_size": 2,
        "num_workers": 0,
        "val_patches": 2,
    },
    "model": {
        "encoder": "tf_efficientnet_lite0",
        "weights": "random",
        "in_slices": 3,
        "decoder_channels": [16, 16, 8, 8, 8],
    },
    "optim": {"lr": 1e-3, "warmup_steps": 1},
    "trainer": {"max_steps": 4, "val_every": 2, "log_every": 1},
}


@pytest.fixture(scope="session")
def make_tiny_config() -> Callable[[], dict[str, Any]]:
    """Factory of fresh copies of the tiny config: phantom 10×64×64, 64² patches, batch 2, k=3,
    random Lite0 with a slim decoder, 4 steps with validation every 2."""
    return lambda: copy.deepcopy(TINY)


@pytest.fixture
def tiny_config(make_tiny_config) -> dict[str, Any]:
    """A fresh copy of the tiny config."""
    return make_tiny_config()
