"""First-layer channel strategies: shapes, the rules of docs/design-notes.md, invariances."""

from __future__ import annotations

from typing import get_args

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from timm.models import adapt_input_conv

from slicewise.config import FIRST_LAYER_STRATEGIES, ChannelInit, ModelConfig
from slicewise.errors import ConfigError
from slicewise.models import STRATEGIES, build_model
from slicewise.models.channels import MirrorSymmetric, adapt_weight, normalization
from slicewise.models.encoders import CNNEncoder
from slicewise.models.weights import lite_package_state_dict

SMALL = dict(decoder_channels=(32, 16, 16, 8, 8))
VIT = dict(encoder="slicewise_samvit_tiny_patch16", weights="random", img_size=64)
CNN = dict(encoder="tf_efficientnet_lite0", weights="imagenet")


@pytest.mark.parametrize("arch", [CNN, VIT], ids=["lite0", "samvit"])
@pytest.mark.parametrize("name", list(STRATEGIES))
@pytest.mark.parametrize("k", [1, 3, 5])
def test_output_shapes_or_clear_error(arch, name, k):
    if name == "rgb" and k != 3:
        with pytest.raises(ConfigError, match="rgb.*3 input channels"):
            build_model(**arch, in_slices=k, channel_init=name)
        return
    model = build_model(**arch, **SMALL, in_slices=k, channel_init=name, classes=3, extra_heads=("boundary",)).eval()
    assert model.first_layer.weight.shape[1] == k == model.in_channels
    assert model.mean.shape == model.std.shape == (1, k, 1, 1)
    with torch.no_grad():
        y = model(torch.rand(2, k, 32, 32))
    assert y.shape == (2, 4, 32, 32)
    assert model.heads == {"seg": slice(0, 3), "boundary": slice(3, 4)}


@pytest.mark.parametrize("k", [1, 3, 5, 7])
def test_repeat_equals_timm_adapt_input_conv(k):
    w = lite_package_state_dict("tf_efficientnet_lite0")["conv_stem.weight"]
    model = build_model(**CNN, in_slices=k, channel_init="repeat")
    expected = adapt_input_conv(k, w.clone())
    torch.testing.assert_close(model.first_layer.weight.detach(), expected, rtol=0, atol=0)
    if k >= 3:  # the docs/design-notes.md rule W'[:, c] = W[:, c mod 3]·3/k
        torch.testing.assert_close(expected, w[:, [c % 3 for c in range(k)]] * 3 / k)


def test_normalization_only_rgb_is_per_channel():
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    m, s = normalization("rgb", mean, std, 3)
    assert m.tolist() == pytest.approx(list(mean)) and s.tolist() == pytest.approx(list(std))
    for name in ("repeat", "uniform", "mirror", "random"):
        m, s = normalization(name, mean, std, 5)
        assert m.tolist() == pytest.approx([sum(mean) / 3] * 5) and s.tolist() == pytest.approx([sum(std) / 3] * 5)
    m, _ = normalization("uniform", mean, std, 3, colors=3)  # RGB slices keep per-color values
    assert m.tolist() == pytest.approx(list(mean) * 3)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_uniform_identical_slices_match_pretrained_gray(k):
    """A stack of k copies of g gives exactly the pretrained features of the RGB image (g, g, g)."""
    model = build_model(**CNN, in_slices=k, channel_init="uniform").double().eval()
    reference = (
        CNNEncoder("tf_efficientnet_lite0", {"state_dict": dict(lite_package_state_dict("tf_efficientnet_lite0"))})
        .double()
        .eval()
    )
    g = torch.rand(2, 1, 64, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    m, s = model.mean[0, 0].item(), model.std[0, 0].item()
    with torch.no_grad():
        ours = model.encoder(model.normalize(g.repeat(1, k, 1, 1)))
        ref = reference(((g - m) / s).repeat(1, 3, 1, 1))
    assert len(ours) == len(ref) == 5
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
        assert a.abs().max() > 0.1


def test_uniform_differs_from_rgb_on_non_gray_input():
    """Control for the test above: the equality is not trivial (rgb weighs slices unequally)."""
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    a = build_model(**CNN, channel_init="uniform").eval()
    b = build_model(**CNN, channel_init="rgb").eval()
    b.decoder.load_state_dict(a.decoder.state_dict())
    with torch.no_grad():
        assert not torch.allclose(a(x), b(x), atol=1e-3)


@pytest.mark.parametrize("arch", [CNN, VIT], ids=["lite0", "samvit"])
def test_mirror_invariant_to_slice_reversal_during_training(arch):
    torch.manual_seed(0)
    k = 5
    model = build_model(**arch, **SMALL, in_slices=k, channel_init="mirror", decoder_norm="group").double()
    x = torch.rand(2, k, 32, 32, dtype=torch.float64)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    before = model.first_layer.weight.detach().clone()
    for step in range(3):
        model.eval()
        with torch.no_grad():
            torch.testing.assert_close(model(x), model(x.flip(1)), rtol=0, atol=1e-9)
        if step == 2:
            break
        model.train()
        loss = model(torch.rand(2, k, 32, 32, dtype=torch.float64)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    w = model.first_layer.weight.detach()
    assert not torch.allclose(w, before)  # the first layer did train
    assert torch.equal(w, w.flip(1))
    assert not torch.allclose(w[:, 0], w[:, 1])  # symmetric, not collapsed to uniform


@settings(max_examples=30, deadline=None)
@given(k=st.sampled_from([1, 3, 5, 7, 9]), seed=st.integers(0, 2**16))
def test_mirror_parametrisation_is_symmetric_and_idempotent(k, seed):
    v = torch.randn(6, k, 3, 3, generator=torch.Generator().manual_seed(seed))
    p = MirrorSymmetric(k, 1)
    w = p(v)
    assert torch.equal(w, w.flip(1))
    torch.testing.assert_close(p(w), w)


@settings(max_examples=30, deadline=None)
@given(k=st.sampled_from([1, 3, 5, 7, 9]), seed=st.integers(0, 2**16))
def test_uniform_and_repeat_preserve_total_weight(k, seed):
    """Σ_c W'[:, c] = Σ_j W[:, j] for uniform (any k) and repeat (k multiple of 3 or 1)."""
    w = torch.randn(8, 3, 3, 3, generator=torch.Generator().manual_seed(seed))
    total = w.sum(1)
    torch.testing.assert_close(adapt_weight(w, "uniform", k).sum(1), total)
    wu = adapt_weight(w, "uniform", k)
    assert torch.equal(wu, wu[:, :1].expand_as(wu))
    if k == 1 or k % 3 == 0:
        torch.testing.assert_close(adapt_weight(w, "repeat", k).sum(1), total, rtol=1e-5, atol=1e-5)


def test_random_reinitializes_only_the_first_layer():
    torch.manual_seed(0)
    model = build_model(**CNN, in_slices=3, channel_init="random")
    sd = lite_package_state_dict("tf_efficientnet_lite0")
    assert not torch.allclose(model.first_layer.weight, sd["conv_stem.weight"])
    torch.testing.assert_close(model.encoder.body.bn1.weight.detach(), sd["bn1.weight"])
    # the architecture's own init (timm efficientnet: N(0, sqrt(2 / fan_out)))
    w = model.first_layer.weight.detach()
    fan_out = w.shape[0] * w.shape[2] * w.shape[3]
    assert w.std().item() == pytest.approx((2 / fan_out) ** 0.5, rel=0.25)


def test_unknown_strategy_is_one_line_error():
    with pytest.raises(ConfigError) as err:
        build_model(**CNN, channel_init="gray")
    assert "\n" not in str(err.value) and "uniform" in str(err.value)


def test_the_strategy_table_is_the_one_list_of_names_descriptions_and_flags():
    assert list(STRATEGIES) == list(FIRST_LAYER_STRATEGIES) == list(get_args(ChannelInit))
    for name, strategy in STRATEGIES.items():
        row = FIRST_LAYER_STRATEGIES[name]
        assert strategy.doc == row.doc and strategy.doc.strip() and strategy.reinit == row.reinit
    assert [s.name for s in STRATEGIES.values() if s.reinit] == ["random"]
    with pytest.raises(ValueError, match="mirror"):  # the config's allowed values come from the table
        ModelConfig(channel_init="nosuch")
