"""Losses and targets derived from instance labels (no model, fast)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi

from slicewise.config import LossConfig as LossWeights
from slicewise.training.losses import SegmentationLoss, boundary_map, distance_map, soft_dice_loss


def _onehot_logits(target: torch.Tensor, classes: int, scale: float) -> torch.Tensor:
    return scale * F.one_hot(target, classes).permute(0, 3, 1, 2).float()


def test_soft_dice_of_perfect_prediction_is_zero_and_of_wrong_one_is_one():
    target = torch.randint(0, 3, (2, 16, 16), generator=torch.Generator().manual_seed(0))
    assert soft_dice_loss(_onehot_logits(target, 3, 50.0), target).item() < 1e-3
    wrong = (target + 1) % 3
    assert soft_dice_loss(_onehot_logits(wrong, 3, 50.0), target).item() > 0.95


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), classes=st.integers(2, 4), alpha=st.floats(0.1, 5.0))
def test_ce_plus_dice_decreases_when_logits_move_toward_target(seed, classes, alpha):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, classes, 8, 8, generator=g)
    target = torch.randint(0, classes, (2, 8, 8), generator=g)
    loss = SegmentationLoss({"seg": slice(0, classes)}, LossWeights())
    before, _ = loss(logits, {"target": target})
    after, parts = loss(logits + _onehot_logits(target, classes, alpha), {"target": target})
    assert after.item() < before.item()
    assert set(parts) == {"ce", "dice"}


def test_ignored_pixels_do_not_change_the_loss():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(1, 2, 8, 8, generator=g)
    target = torch.randint(0, 2, (1, 8, 8), generator=g)
    target[:, :3] = 255
    loss = SegmentationLoss({"seg": slice(0, 2)}, LossWeights(ignore_index=255))
    other = logits.clone()
    other[:, :, :3] = torch.randn(1, 2, 3, 8, generator=g) * 10
    a, _ = loss(logits, {"target": target})
    b, _ = loss(other, {"target": target})
    assert torch.allclose(a, b)
    changed = logits.clone()
    changed[:, 0, 5:] += 3.0
    c, _ = loss(changed, {"target": target})
    assert not torch.allclose(a, c)


def test_class_weights_change_only_the_ce_term():
    g = torch.Generator().manual_seed(2)
    logits, target = torch.randn(1, 2, 8, 8, generator=g), torch.randint(0, 2, (1, 8, 8), generator=g)
    _, plain = SegmentationLoss({"seg": slice(0, 2)})(logits, {"target": target})
    _, weighted = SegmentationLoss({"seg": slice(0, 2)}, LossWeights(class_weights=(1.0, 5.0)))(
        logits, {"target": target}
    )
    assert torch.allclose(plain["dice"], weighted["dice"])
    assert not torch.allclose(plain["ce"], weighted["ce"])


def test_extra_heads_terms_vanish_for_perfect_boundary_and_distance():
    heads = {"seg": slice(0, 2), "boundary": slice(2, 3), "distance": slice(3, 4)}
    target = torch.zeros(1, 8, 8, dtype=torch.long)
    bmap = (torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(3)) > 0.5).float()
    dmap = torch.rand(1, 1, 8, 8)
    out = torch.cat([_onehot_logits(target, 2, 50.0), (bmap * 2 - 1) * 50.0, dmap], dim=1)
    loss = SegmentationLoss(heads, LossWeights(boundary_dice=1.0))
    total, parts = loss(out, {"target": target, "boundary": bmap, "distance": dmap})
    assert set(parts) == {"ce", "dice", "boundary", "boundary_dice", "distance"}
    assert parts["boundary"].item() < 1e-6 and parts["distance"].item() == 0.0
    assert parts["boundary_dice"].item() < 1e-3
    worse, _ = loss(torch.cat([out[:, :3], dmap + 0.5], dim=1), {"target": target, "boundary": bmap, "distance": dmap})
    assert worse.item() > total.item() + 0.2


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), ids=st.integers(1, 4))
def test_boundary_map_marks_pixels_with_a_different_4_neighbour(seed, ids):
    lab = np.random.default_rng(seed).integers(0, ids + 1, size=(7, 9))
    pad = np.pad(lab, 1, mode="edge")  # the image edge is not a boundary
    centre = pad[1:-1, 1:-1]
    expected = (
        (pad[:-2, 1:-1] != centre) | (pad[2:, 1:-1] != centre) | (pad[1:-1, :-2] != centre) | (pad[1:-1, 2:] != centre)
    )
    np.testing.assert_array_equal(boundary_map(lab), expected)
    perm = np.random.default_rng(seed + 1).permutation(ids + 1) + 10
    np.testing.assert_array_equal(boundary_map(perm[lab]), expected)  # ids, not their values, matter


def test_distance_map_is_normalized_per_instance():
    lab = np.zeros((40, 40), np.int32)
    yy, xx = np.mgrid[:40, :40]
    lab[(yy - 12) ** 2 + (xx - 12) ** 2 <= 8**2] = 3
    lab[25:35, 22:38] = 7
    d = distance_map(lab)
    assert d.dtype == np.float32 and d.min() == 0.0 and d.max() == 1.0
    assert np.all(d[lab == 0] == 0)
    for i in (3, 7):
        assert d[lab == i].max() == 1.0 and d[lab == i].min() > 0
    assert d[12, 12] == 1.0  # the disc's centre is its farthest point from its border
    edt = ndi.distance_transform_edt(lab == 7)
    np.testing.assert_allclose(d[lab == 7], edt[lab == 7] / edt.max(), rtol=1e-6)


def test_distance_map_does_not_treat_the_image_edge_as_border():
    lab = np.zeros((10, 10), np.int32)
    lab[:, :5] = 1  # touches top, bottom and left edges
    d = distance_map(lab)
    np.testing.assert_allclose(d[:, :5], np.tile(np.array([5, 4, 3, 2, 1]) / 5, (10, 1)), rtol=1e-6)
