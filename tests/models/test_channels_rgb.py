"""First-layer channel strategies for RGB slices (colors = 3, e.g. H&E): k slices × 3 colors."""

from __future__ import annotations

import pytest
import torch

from slicewise.errors import ConfigError
from slicewise.models import build_model
from slicewise.models.channels import MirrorSymmetric, adapt_weight
from slicewise.models.weights import lite_package_state_dict

SMALL = dict(decoder_channels=(32, 16, 16, 8, 8))
CNN = dict(encoder="tf_efficientnet_lite0", weights="imagenet")


def test_mirror_rgb_slices_keep_colors_apart():
    v = torch.randn(4, 9, 3, 3)
    w = MirrorSymmetric(3, 3)(v)
    torch.testing.assert_close(w[:, 0:3], w[:, 6:9])
    torch.testing.assert_close(w[:, 0:3], (v[:, 0:3] + v[:, 6:9]) / 2)
    torch.testing.assert_close(w[:, 3:6], v[:, 3:6])


@pytest.mark.parametrize("name", ["repeat", "uniform", "mirror"])
@pytest.mark.parametrize("k", [1, 3])
def test_rgb_slices_identical_images_give_pretrained_response(name, k):
    """colors=3: k copies of an RGB image through W' equal the image through the pretrained W."""
    w = torch.randn(8, 3, 3, 3, dtype=torch.float64)
    adapted = adapt_weight(w, name, k, colors=3)
    assert adapted.shape == (8, 3 * k, 3, 3)
    img = torch.rand(1, 3, 16, 16, dtype=torch.float64)
    torch.testing.assert_close(
        torch.nn.functional.conv2d(img.repeat(1, k, 1, 1), adapted), torch.nn.functional.conv2d(img, w)
    )
    if k == 1:
        assert torch.equal(adapted, w)
    assert torch.equal(adapt_weight(w, "rgb", 1, colors=3), w)  # rgb with one RGB slice = the plain network


@pytest.mark.parametrize("name,k", [("rgb", 1), ("uniform", 3), ("mirror", 3), ("repeat", 1), ("random", 3)])
def test_rgb_slices_build_and_run(name, k):
    """colors=3 (e.g. H&E): k slices × 3 colors in, slice-major; rgb with k=1 is the plain network."""
    model = build_model(**CNN, **SMALL, in_slices=k, colors=3, channel_init=name).eval()
    assert model.in_channels == 3 * k == model.first_layer.weight.shape[1]
    with torch.no_grad():
        assert model(torch.rand(1, 3 * k, 32, 32)).shape == (1, 2, 32, 32)
    if name in ("rgb", "uniform", "mirror", "repeat"):
        w = lite_package_state_dict("tf_efficientnet_lite0")["conv_stem.weight"]
        torch.testing.assert_close(model.first_layer.weight.detach(), w.repeat(1, k, 1, 1) / k)
        assert model.mean.flatten().tolist() == pytest.approx([0.5] * 3 * k)


def test_rgb_strategy_rejects_three_rgb_slices():
    with pytest.raises(ConfigError, match="k=3 × 3"):
        build_model(**CNN, in_slices=3, colors=3, channel_init="rgb")
    with pytest.raises(ConfigError, match="'colors' .*1 \\(grayscale\\) or 3"):
        build_model(**CNN, in_slices=3, colors=2)
