"""U-Net decoder: skip masks, stride sets, norms, heads."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from slicewise.errors import ConfigError
from slicewise.models import build_model
from slicewise.models.decoder import UNetDecoder, head_slices

LITE0 = dict(encoder="tf_efficientnet_lite0", weights="imagenet", decoder_channels=(32, 16, 16, 8, 8))


def _params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_skip_mask_changes_parameters_exactly_as_documented():
    full = build_model(**LITE0, skips="1111")
    pruned = build_model(**LITE0, skips="0111")
    none = build_model(**LITE0, skips="0000")
    assert full.decoder.skip_strides == (2, 4, 8, 16)
    assert pruned.decoder.skip_strides == (4, 8, 16)
    assert none.decoder.skip_strides == ()
    # L1 = stride-2 skip (16 channels in Lite0) feeds block 3 (decoder_channels[3] = 8): 9·16·8 weights
    assert _params(full) - _params(pruned) == 9 * 16 * 8
    chans = dict(zip(full.encoder.reductions, full.encoder.channels))
    widths = dict(zip(full.decoder.block_strides, (32, 16, 16, 8, 8)))
    assert _params(full) - _params(none) == sum(9 * chans[s] * widths[s] for s in (2, 4, 8, 16))
    assert none.decoder.blocks[0].skip_channels == 0


def test_pruned_skip_changes_output_and_is_ignored_in_forward():
    torch.manual_seed(0)
    full = build_model(**LITE0, skips="1111").eval()
    torch.manual_seed(0)
    pruned = build_model(**LITE0, skips="0111").eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(full(x), pruned(x))
        # with the stride-2 feature zeroed, "1111" needs it, "0111" must not care
        feats = pruned.encoder(pruned.normalize(x))
        altered = [f.clone() for f in feats]
        altered[0] = torch.randn_like(altered[0])
        torch.testing.assert_close(pruned.decoder(feats), pruned.decoder(altered))
        assert not torch.allclose(
            full.decoder(full.encoder(full.normalize(x))),
            full.decoder([altered[0], *full.encoder(full.normalize(x))[1:]]),
        )


@pytest.mark.parametrize("encoder,strides", [("convnext_atto", (4, 8, 16)), ("resnet18", (2, 4, 8, 16))])
def test_any_stride_set_reaches_full_resolution(encoder, strides):
    model = build_model(encoder=encoder, weights="random", decoder_channels=(32, 16, 16, 8, 8), skips="1111").eval()
    assert model.decoder.skip_strides == strides
    with torch.no_grad():
        assert model(torch.rand(1, 3, 64, 96)).shape == (1, 2, 64, 96)


def test_skip_string_too_short_is_config_error():
    with pytest.raises(ConfigError, match="give 4 characters"):
        build_model(**LITE0, skips="11")


@pytest.mark.parametrize("norm", ["batch", "group", "instance", "none"])
def test_decoder_norms(norm):
    dec = UNetDecoder((16, 24, 40), (2, 4, 8), norm=norm, decoder_channels=(32, 16, 8), classes=2)
    feats = [torch.rand(2, c, 32 // r, 32 // r) for c, r in zip((16, 24, 40), (2, 4, 8))]
    assert dec(feats).shape == (2, 2, 32, 32)
    kinds = {type(m).__name__ for m in dec.modules()}
    expected = {"batch": "BatchNorm2d", "group": "GroupNorm", "instance": "InstanceNorm2d"}.get(norm)
    if expected:
        assert expected in kinds
    else:
        assert not kinds & {"BatchNorm2d", "GroupNorm", "InstanceNorm2d"}


def test_heads_are_concatenated_in_order():
    assert head_slices(3, ("boundary", "distance")) == {
        "seg": slice(0, 3),
        "boundary": slice(3, 4),
        "distance": slice(4, 5),
    }
    model = build_model(**LITE0, classes=3, extra_heads=("distance",))
    assert model.out_channels == 4 and model.heads["distance"] == slice(3, 4)


def test_channels_last_gives_same_output():
    model = build_model(**LITE0).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
        out = model.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)


@settings(max_examples=25, deadline=None)
@given(mask=st.text(alphabet="01", min_size=4, max_size=4))
def test_parameter_count_of_any_skip_mask(mask):
    """Each pruned level removes exactly 9 · skip channels · block width weights; live skips match the mask."""
    channels, reductions, widths = (16, 24, 40, 112, 320), (2, 4, 8, 16, 32), (32, 16, 16, 8, 8)
    full = UNetDecoder(channels, reductions, skips="1111", decoder_channels=widths)
    dec = UNetDecoder(channels, reductions, skips=mask, decoder_channels=widths)
    assert dec.skip_strides == tuple(2 ** (i + 1) for i, c in enumerate(mask) if c == "1")
    width_at = dict(zip(dec.block_strides, widths))
    removed = sum(9 * channels[i] * width_at[2 ** (i + 1)] for i, c in enumerate(mask) if c == "0")
    assert _params(full) - _params(dec) == removed
    feats = [torch.rand(1, c, 64 // r, 64 // r) for c, r in zip(channels, reductions)]
    assert dec(feats).shape == (1, 2, 64, 64)
