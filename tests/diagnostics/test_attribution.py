"""Attribution: Captum wiring against direct autograd, slice shares, and the pretrained-bias findings on ISBI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from slicewise.diagnostics.attribution import (
    attribute,
    attribution_report,
    compare_models,
    predicted_mask,
    tile_slice_shares,
)
from slicewise.errors import InputError


def _target(model: nn.Module, x: torch.Tensor, region: torch.Tensor, channel: int = 1) -> torch.Tensor:
    return (model(x)[:, channel] * region).flatten(1).sum(1)


def _direct_grad(model: nn.Module, x: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(_target(model, x, region).sum(), x)
    return g


def test_saliency_and_ixg_equal_direct_autograd(tiny_model: nn.Module) -> None:
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    roi = (torch.rand(4, 16, 16, generator=torch.Generator().manual_seed(2)) > 0.5).float()
    for region in ("tile", roi):
        r = torch.ones(4, 16, 16) if isinstance(region, str) else roi
        g = _direct_grad(tiny_model, x, r)
        torch.testing.assert_close(attribute(tiny_model, x, method="saliency", region=region), g.abs())
        torch.testing.assert_close(attribute(tiny_model, x, method="ixg", region=region), (x * g).abs())


def test_mask_region_is_the_predicted_class(tiny_model: nn.Module) -> None:
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    mask = predicted_mask(tiny_model, x, 0)
    with torch.no_grad():
        assert torch.equal(mask.bool(), tiny_model(x).argmax(1) == 0)
    assert 0 < mask.sum() < mask.numel()
    torch.testing.assert_close(
        attribute(tiny_model, x, region="mask", target_class=0), attribute(tiny_model, x, region=mask, target_class=0)
    )


class LinearSeg(nn.Module):
    """A linear network: integrated gradients equal (x − baseline) ⊙ ∂T/∂x exactly."""

    in_slices = 3
    out_channels = 2
    heads = {"seg": slice(0, 2)}

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def test_integrated_gradients_baseline_is_tile_mean() -> None:
    model = LinearSeg()
    x = torch.rand(5, 3, 8, 8, generator=torch.Generator().manual_seed(4))
    g = _direct_grad(model, x, torch.ones(5, 8, 8))
    expected = ((x - x.mean(dim=(1, 2, 3), keepdim=True)) * g).abs()
    torch.testing.assert_close(
        attribute(model, x, method="ig", n_steps=4, internal_batch_size=7), expected, rtol=1e-4, atol=1e-6
    )


def test_integrated_gradients_batched_equals_captum_per_tile(tiny_model: nn.Module) -> None:
    from captum.attr import IntegratedGradients

    from slicewise.diagnostics.attribution import TargetLogitSum

    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(5))
    batched = attribute(tiny_model, x, method="ig", n_steps=8, internal_batch_size=5)
    ig = IntegratedGradients(TargetLogitSum(tiny_model, 1))
    for i in range(3):
        xi = x[i : i + 1]
        ref = ig.attribute(
            xi,
            baselines=torch.full_like(xi, float(xi.mean())),
            n_steps=8,
            additional_forward_args=(torch.ones(1, 16, 16),),
        )
        torch.testing.assert_close(batched[i : i + 1], ref.abs(), rtol=1e-4, atol=1e-6)


def test_tile_slice_shares_sum_colors_per_slice() -> None:
    a = torch.zeros(2, 6, 4, 4)
    a[0, 0] = 1.0
    a[0, 1] = 1.0  # slice 0 (two colors) -> 2 units
    a[0, 4] = 2.0  # slice 2 -> 2 units
    a[1] = 1.0
    s = tile_slice_shares(a, 3)
    torch.testing.assert_close(s, torch.tensor([[0.5, 0.0, 0.5], [1 / 3, 1 / 3, 1 / 3]], dtype=torch.float64))


def test_report_fields_and_errors(tiny_model: nn.Module, tiny_volume: np.ndarray) -> None:
    r = attribution_report(tiny_model, tiny_volume, n_tiles=6, tile=16, n_resamples=200, n_maps=2)
    assert r["k"] == 3 and r["n_tiles"] == 6 and r["target_class"] == 1 and r["region"] == "tile"
    assert sum(s["value"] for s in r["shares"]) == pytest.approx(1.0)
    assert np.allclose(np.sum(r["tile_shares"], axis=1), 1.0)
    assert r["maps"]["inputs"].shape == (2, 3, 16, 16) == r["maps"]["attributions"].shape
    assert r == attribution_report(tiny_model, tiny_volume, n_tiles=6, tile=16, n_resamples=200, n_maps=2) | {
        "maps": r["maps"]
    }
    roi = np.zeros(tiny_volume.shape, np.uint8)
    with pytest.raises(InputError, match="empty"):
        attribution_report(tiny_model, tiny_volume, region=roi, n_tiles=3, tile=16)
    with pytest.raises(InputError, match="class 5"):
        attribution_report(tiny_model, tiny_volume, target_class=5, n_tiles=3, tile=16)
    with pytest.raises(InputError, match="method"):
        attribution_report(tiny_model, tiny_volume, method="gradcam", n_tiles=3, tile=16)
    with pytest.raises(InputError, match="larger than the image"):
        attribution_report(tiny_model, tiny_volume, n_tiles=3, tile=64)
    with pytest.raises(InputError, match="k=5"):
        attribution_report(tiny_model, tiny_volume, n_tiles=3, tile=16, k=5)


# --- the pretrained-bias findings on an ISBI 2012 crop, real ImageNet Lite0 weights ---------


def _lite0(channel_init: str) -> nn.Module:
    from slicewise.models import build_model

    torch.manual_seed(0)
    return build_model(
        encoder="tf_efficientnet_lite0",
        weights="imagenet",
        channel_init=channel_init,
        in_slices=3,
        decoder_channels=(32, 16, 16, 8, 8),
    )


def _excludes(ci: list[float], value: float) -> bool:
    return not ci[0] <= value <= ci[1]


def test_rgb_shares_unequal_beyond_cis(isbi_crop) -> None:
    raw, _ = isbi_crop
    r = attribution_report(_lite0("rgb"), raw, method="saliency", n_tiles=12, tile=64, n_resamples=500)
    s = r["shares"]
    assert s[1]["ci"][0] > max(s[0]["ci"][1], s[2]["ci"][1])  # the G (centre) slice dominates
    assert _excludes(r["pair_difference"]["ci"], 0.0)  # R and B weigh differently
    assert r["mirror_asymmetry"]["ci"][0] > 0.05


@pytest.mark.parametrize("method", ["saliency", "ixg"])
def test_uniform_is_mirror_symmetric_within_cis(isbi_crop, method: str) -> None:
    raw, _ = isbi_crop
    r = attribution_report(_lite0("uniform"), raw, method=method, n_tiles=12, tile=64, n_resamples=500)
    assert not _excludes(r["pair_difference"]["ci"], 0.0)
    s = r["shares"]
    assert not (_excludes(s[0]["ci"], s[2]["value"]) and _excludes(s[2]["ci"], s[0]["value"]))


def test_mirror_saliency_symmetric_before_and_after_fine_tuning(isbi_crop) -> None:
    from slicewise.data.stacking import stack_slices, to_unit_float

    raw, lab = isbi_crop
    m0 = _lite0("mirror")
    m1 = _lite0("mirror")
    x = torch.from_numpy(to_unit_float(stack_slices(raw, [2, 5, 7], 3, yx=(slice(0, 64), slice(0, 64)))))
    y = torch.from_numpy((lab[[2, 5, 7], :64, :64] > 0).astype(np.int64))
    opt = torch.optim.Adam(m1.parameters(), lr=1e-2)
    m1.train()
    for _ in range(3):
        loss = nn.functional.cross_entropy(m1(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    w0, w1 = m0.first_layer.weight.detach(), m1.first_layer.weight.detach()
    assert not torch.allclose(w0, w1)  # the first layer did train
    res = compare_models(
        {"pretrained": m0, "fine-tuned": m1}, raw, method="saliency", n_tiles=8, tile=64, n_resamples=200
    )
    assert list(res["models"]) == ["pretrained", "fine-tuned"]
    for rep in res["models"].values():
        assert rep["mirror_asymmetry"]["value"] == pytest.approx(0.0, abs=1e-9)
        assert rep["pair_difference"]["value"] == pytest.approx(0.0, abs=1e-9)
    assert res["models"]["pretrained"]["tile_shares"] != res["models"]["fine-tuned"]["tile_shares"]


def test_public_namespace() -> None:
    import slicewise
    import slicewise.diagnostics.attribution as module
    from slicewise.diagnostics.hellinger import shift_report
    from slicewise.diagnostics.weights_audit import audit_weights

    assert slicewise.audit.attribution_report is attribution_report
    assert slicewise.audit.shift_report is shift_report
    assert slicewise.audit.audit_weights is audit_weights
    assert slicewise.audit.compare_models is compare_models
    assert module.attribution_report is attribution_report  # the submodule is not shadowed by an alias


def test_rgb_slices_pool_their_colors(tiny_rgb_model: nn.Module, tiny_volume: np.ndarray) -> None:
    rgb = np.stack([tiny_volume, tiny_volume[::-1], 255 - tiny_volume], axis=-1)
    r = attribution_report(tiny_rgb_model, rgb, n_tiles=3, tile=16, n_resamples=100)
    assert r["k"] == 1 and [s["value"] for s in r["shares"]] == [1.0]
    assert r["maps"]["inputs"].shape[1] == 3


@pytest.mark.parametrize("method", ["saliency", "ig"])
def test_bf16_channels_last_shares_stay_within_0_01_of_fp32(tiny_volume: np.ndarray, method: str) -> None:
    """The speed option (bf16 autocast + channels_last, here on CPU) moves no slice share by 0.01 or more,
    on a real U-Net (random Lite0 encoder, slim decoder) and leaves the model's memory format as it was."""
    from slicewise.models import build_model

    torch.manual_seed(0)
    model = build_model(
        encoder="tf_efficientnet_lite0", weights="random", in_slices=3, decoder_channels=(16, 16, 8, 8, 8)
    )
    kw = dict(method=method, n_tiles=6, tile=32, n_steps=8, n_resamples=100, n_maps=1, batch_size=3)
    ref = attribution_report(model, tiny_volume, **kw)
    fast = attribution_report(model, tiny_volume, bf16=True, channels_last=True, **kw)
    assert ref["precision"] == "fp32" and fast["precision"] == "bf16"
    diff = np.abs(np.asarray(fast["tile_shares"]) - np.asarray(ref["tile_shares"]))
    assert diff.max() < 0.01
    assert fast["maps"]["attributions"].dtype == np.float32
    assert not np.array_equal(fast["maps"]["attributions"], ref["maps"]["attributions"])  # bf16 really ran
    assert all(p.is_contiguous() for p in model.parameters())


def test_deprecated_short_audit_names_warn() -> None:
    import slicewise
    from slicewise.diagnostics.weights_audit import audit_weights

    with pytest.warns(DeprecationWarning, match="audit_weights"):
        assert slicewise.audit.weights is audit_weights
