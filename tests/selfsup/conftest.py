"""Small pretraining settings for CPU tests: the timm test EfficientNet, 32-px views of a tiny phantom."""

from __future__ import annotations

import pytest

TINY = [
    "model.encoder=test_efficientnet",
    "model.weights=random",
    "data.patch_size=32",
    "data.batch_size=8",
    "data.synthetic.shape=[6,64,64]",
    "method.memory_bank=32",
    "trainer.accelerator=cpu",
    "data.probe_patches=8",
    "trainer.max_steps=4",
    "trainer.val_every=2",
    "trainer.log_every=1",
]


@pytest.fixture
def tiny() -> list[str]:
    """Overrides of a 4-step run (validation and checkpoints after steps 2 and 4) on a 6×64×64 phantom."""
    return list(TINY)
