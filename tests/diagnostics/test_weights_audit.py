"""First-layer weight audit (no data): norms, shares and the asymmetry indices."""

from __future__ import annotations

import pytest
import torch

from slicewise.diagnostics.weights_audit import audit_weights, first_layer_norms, format_weights_audit
from slicewise.models.weights import lite_package_state_dict


def test_lite0_rgb_shares_and_mirror_asymmetry():
    result = audit_weights("tf_efficientnet_lite0", "imagenet", in_slices=3, channel_init="rgb")
    assert [round(s, 3) for s in result["shares"]] == [0.263, 0.525, 0.212]
    assert round(result["mirror_asymmetry"], 3) == 0.108
    assert result["centre_share"] == pytest.approx(result["shares"][1])
    assert result["pair_difference"] == pytest.approx(result["shares"][0] - result["shares"][2])
    assert [c["name"] for c in result["channels"]] == ["R", "G", "B"]
    assert result["first_layer"].endswith("conv_stem") and result["kernel_shape"] == [32, 3, 3, 3]


def test_norms_match_the_package_kernel():
    w = lite_package_state_dict("tf_efficientnet_lite0")["conv_stem.weight"]
    l1, l2 = first_layer_norms(w)
    for c in range(3):
        assert l1[c] == pytest.approx(w[:, c].abs().sum().item(), rel=1e-6)
        assert l2[c] == pytest.approx(w[:, c].norm().item(), rel=1e-6)


@pytest.mark.parametrize("strategy", ["uniform", "mirror"])
@pytest.mark.parametrize("k", [3, 5])
def test_symmetric_strategies_have_zero_asymmetry(strategy, k):
    result = audit_weights("tf_efficientnet_lite0", "imagenet", in_slices=k, channel_init=strategy)
    assert result["mirror_asymmetry"] == pytest.approx(0, abs=1e-12)
    assert result["shares"] == pytest.approx([1 / k] * k)
    assert [c["offset"] for c in result["channels"]] == list(range(-(k // 2), k // 2 + 1))


def test_repeat_k5_is_asymmetric():
    """repeat cycles R, G, B, R, G over five slices: the mirror pairs differ."""
    result = audit_weights("tf_efficientnet_lite0", "imagenet", in_slices=5, channel_init="repeat")
    rgb = audit_weights("tf_efficientnet_lite0", "imagenet", in_slices=3, channel_init="rgb")["shares"]
    expected = torch.tensor([rgb[c % 3] for c in range(5)], dtype=torch.float64)
    expected /= expected.sum()
    assert result["shares"] == pytest.approx(expected.tolist())
    assert result["mirror_asymmetry"] > 0.1


def test_format_is_a_table_with_the_indices():
    text = format_weights_audit(audit_weights("tf_efficientnet_lite0", "imagenet", in_slices=3, channel_init="rgb"))
    lines = text.splitlines()
    assert len(lines) == 1 + 1 + 3 + 1
    assert "0.5248" in lines[3] and "MA = 0.1083" in lines[-1]  # 4 significant digits


def test_vit_patch_embedding_is_audited_the_same_way():
    result = audit_weights("slicewise_samvit_tiny_patch16", "random", in_slices=5, channel_init="uniform", img_size=64)
    assert result["first_layer"] == "vit.patch_embed.proj" and result["kernel_shape"] == [96, 5, 16, 16]
    assert result["mirror_asymmetry"] == pytest.approx(0, abs=1e-12)


def test_rgb_slices_are_summed_per_slice():
    result = audit_weights("tf_efficientnet_lite0", "imagenet", in_slices=3, channel_init="mirror", colors=3)
    assert [c["name"] for c in result["channels"][:3]] == ["z-1/R", "z-1/G", "z-1/B"]
    assert len(result["channels"]) == 9 and result["shares"] == pytest.approx([1 / 3] * 3)
    assert result["mirror_asymmetry"] == pytest.approx(0, abs=1e-12)
