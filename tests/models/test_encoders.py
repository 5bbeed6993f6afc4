"""timm encoders: metadata (channels, strides, first layer, mean/std) drives everything."""

from __future__ import annotations

import pytest
import timm
import torch

from slicewise.errors import ConfigError
from slicewise.models.encoders import CNNEncoder, find_module_path, pretrained_cfg

CNNS = [
    "resnet18",
    "resnet34",
    "resnet50",
    "efficientnet_b0",
    "efficientnet_b1",
    "efficientnet_b2",
    "tf_efficientnet_lite0",
    "tf_efficientnet_lite1",
    "tf_efficientnet_lite2",
    "convnext_atto",
    "convnext_tiny",
]


@pytest.mark.parametrize("name", CNNS)
def test_encoder_metadata_matches_its_features(name):
    enc = CNNEncoder(name).eval()
    cfg = pretrained_cfg(name)
    assert enc.mean == tuple(cfg["mean"]) and enc.std == tuple(cfg["std"])
    conv = enc.get_submodule(enc.first_conv)
    assert isinstance(conv, torch.nn.Conv2d) and conv.in_channels == 3
    with torch.no_grad():
        feats = enc(torch.rand(1, 3, 64, 64))
    assert [f.shape[1] for f in feats] == list(enc.channels)
    assert [64 // f.shape[-1] for f in feats] == list(enc.reductions)


def test_convnext_has_no_stride_two_feature():
    assert CNNEncoder("convnext_atto").reductions == (4, 8, 16, 32)


def test_find_module_path_sees_through_flattened_names():
    enc = CNNEncoder("convnext_atto")
    assert find_module_path(enc.body, "stem.0") == "stem_0"
    assert enc.first_conv == "body.stem_0"


def test_unknown_encoder_suggests_names():
    with pytest.raises(ConfigError, match="did you mean.*resnet18"):
        CNNEncoder("resnet-18")
    assert timm.is_model("slicewise_samvit_tiny_patch16")
