"""The pair sampler: determinism, device-resident = lazy, z-context positives, the labels heuristic."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from slicewise.config import PretrainConfig, load_config
from slicewise.errors import InputError
from slicewise.selfsup.views import ViewSource, check_unlabelled, looks_like_labels


def _cfg(*overrides: str) -> PretrainConfig:
    return load_config(PretrainConfig, None, ["data.patch_size=16", "model.encoder=test_efficientnet", *overrides])


def _ramp(depth: int = 12) -> np.ndarray:
    """Slice z holds the constant 10·z + 5 (uint8): a view's mean tells its centre slice."""
    return np.broadcast_to((np.arange(depth, dtype=np.uint8) * 10 + 5)[:, None, None], (depth, 40, 40)).copy()


def test_views_are_a_function_of_the_generator_seed(phantom):
    src = ViewSource([phantom.raw], _cfg())
    a1, a2 = src.draw(4, torch.Generator().manual_seed(7))
    b1, b2 = src.draw(4, torch.Generator().manual_seed(7))
    c1, _ = src.draw(4, torch.Generator().manual_seed(8))
    assert a1.shape == (4, 3, 16, 16) and a1.dtype == torch.float32 and 0 <= float(a1.min()) and float(a1.max()) <= 1
    assert torch.equal(a1, b1) and torch.equal(a2, b2) and not torch.equal(a1, c1)
    assert not torch.equal(a1, a2)  # two different views of each region


def test_device_resident_volume_gives_the_views_of_the_lazy_one(phantom):
    cfg = _cfg()
    lazy = ViewSource([phantom.raw], cfg).draw(6, torch.Generator().manual_seed(3))
    resident = ViewSource([torch.from_numpy(phantom.raw)], cfg).draw(6, torch.Generator().manual_seed(3))
    assert all(torch.equal(x, y) for x, y in zip(lazy, resident))


@pytest.mark.parametrize("d", [1, 3])
def test_z_context_positive_is_the_same_crop_of_a_nearby_slice(d):
    cfg = _cfg(
        f"views.z_context={d}",
        "model.in_slices=1",
        "views.augment={flip: 0, rot90: 0, z_reverse: 0, brightness: 0, contrast: 0, gamma: 0, noise: 0, blur: 0}",
    )
    x1, x2 = ViewSource([_ramp()], cfg).draw(32, torch.Generator().manual_seed(0))
    z1 = (x1.mean((1, 2, 3)) * 255 - 5) / 10
    z2 = (x2.mean((1, 2, 3)) * 255 - 5) / 10
    gap = (z2 - z1).round().abs()
    assert gap.min() >= 1 and gap.max() <= d and (z1.round() - z1).abs().max() < 1e-3
    off = ViewSource([_ramp()], _cfg("model.in_slices=1")).draw(8, torch.Generator().manual_seed(0))
    assert torch.allclose(off[0].mean((1, 2, 3)), off[1].mean((1, 2, 3)), atol=0.03 + 0.1)  # same slice without it


def test_two_volumes_of_different_sizes_are_both_sampled(phantom):
    small = phantom.raw[:, :48, :40].copy()
    src = ViewSource([phantom.raw, small], _cfg())
    assert set(np.unique(src.items[:, 0])) == {0, 1}
    x1, _ = src.draw(16, torch.Generator().manual_seed(1))
    assert x1.shape == (16, 3, 16, 16)


def test_label_volumes_are_recognised(phantom):
    assert looks_like_labels(phantom.raw) is None
    assert "distinct" in looks_like_labels(phantom.semantic)
    ids = np.arange(144, dtype=np.uint16).reshape(12, 12).repeat(16, 0).repeat(16, 1)  # 144 instance ids, 16×16 px each
    assert "neighbouring" in looks_like_labels(np.stack([ids] * 3))
    assert looks_like_labels(phantom.raw.astype(np.float32) / 255) is None
    with pytest.raises(InputError, match="looks like a label volume.*probe_labels"):
        check_unlabelled(phantom.semantic, "raw volume labels.tif")


def test_too_few_slices_for_k_and_dz_is_one_line(phantom):
    with pytest.raises(InputError, match="k=5 slices at z-step 2 span 9 slices but the volume has only 6"):
        ViewSource([phantom.raw[:6]], _cfg("model.in_slices=5", "data.dz=2"))
    with pytest.raises(InputError, match="larger than volume"):
        ViewSource([phantom.raw[:, :8, :8]], _cfg())
