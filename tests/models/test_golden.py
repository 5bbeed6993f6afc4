"""Golden outputs (smp's regression test): a refactor must reproduce each strategy's saved forward output.

Per first-layer strategy: Lite0 with its ImageNet weights (offline package), k = 3 slices, the decoder
initialized from ``torch.manual_seed(0)``, one fixed input (seeded uniform, 1×3×32×32, eval mode); the
output is compared with ``tests/models/golden/<strategy>.npz``.

Regenerate (only after a deliberate change of the numbers, and say why in the commit)::

    SLICEWISE_REGEN_GOLDEN=1 PYTHONPATH=. python -m pytest tests/models/test_golden.py
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from slicewise.models import STRATEGIES, build_model

GOLDEN = Path(__file__).parent / "golden"
REGEN = os.environ.get("SLICEWISE_REGEN_GOLDEN") == "1"


def _forward(name: str) -> np.ndarray:
    torch.manual_seed(0)
    model = build_model(
        encoder="tf_efficientnet_lite0",
        weights="imagenet",
        in_slices=3,
        channel_init=name,
        decoder_channels=(16, 8, 8, 8, 8),
        classes=2,
    ).eval()
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return model(x).numpy()


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_forward_output_matches_the_saved_golden_output(name: str) -> None:
    out = _forward(name)
    path = GOLDEN / f"{name}.npz"
    if REGEN:
        GOLDEN.mkdir(exist_ok=True)
        np.savez_compressed(path, output=out)
    assert path.is_file(), f"{path} is missing: regenerate with SLICEWISE_REGEN_GOLDEN=1 (see this module's docstring)"
    ref = np.load(path)["output"]
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)


def test_golden_outputs_differ_between_strategies() -> None:
    """The saved outputs are not all one array (the strategies really change the first layer)."""
    outs = {n: np.load(GOLDEN / f"{n}.npz")["output"] for n in STRATEGIES if (GOLDEN / f"{n}.npz").is_file()}
    assert len(outs) == len(STRATEGIES)
    assert not np.allclose(outs["uniform"], outs["random"]) and not np.allclose(outs["rgb"], outs["random"])
