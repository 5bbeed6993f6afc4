"""Hellinger layer susceptibility: the distance, streaming histograms, hooks, and shift_report."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from slicewise.diagnostics.hellinger import ChannelHistograms, capture, hellinger, hook_points, shift_report
from slicewise.errors import InputError


@given(st.lists(st.integers(0, 50), min_size=8, max_size=8), st.lists(st.integers(0, 50), min_size=8, max_size=8))
@settings(max_examples=60, deadline=None)
def test_hellinger_is_a_bounded_symmetric_distance(p: list[int], q: list[int]) -> None:
    if sum(p) == 0 or sum(q) == 0:
        return
    P, Q = torch.tensor([p], dtype=torch.float64), torch.tensor([q], dtype=torch.float64)
    h = float(hellinger(P, Q))
    assert 0.0 <= h <= 1.0
    assert h == pytest.approx(float(hellinger(Q, P)))
    assert float(hellinger(P, 3 * P)) == pytest.approx(0.0, abs=1e-12)
    ref = np.sqrt(max(0.0, 1 - np.sum(np.sqrt(np.array(p) / sum(p) * np.array(q) / sum(q)))))
    assert h == pytest.approx(ref, abs=1e-7)
    if p == q:
        assert h == 0.0


def test_disjoint_histograms_have_distance_one() -> None:
    assert float(hellinger(torch.tensor([[3.0, 0.0]]), torch.tensor([[0.0, 5.0]]))) == 1.0


def test_channel_histograms_match_numpy_with_end_bins() -> None:
    rng = np.random.default_rng(0)
    act = torch.from_numpy(rng.normal(size=(3, 2, 5, 7)).astype(np.float32))  # B, C, H, W
    lo, hi = torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 0.5])
    hist = ChannelHistograms(lo, hi, bins=8)
    hist.update(act[:2])
    hist.update(act[2:])
    for c in range(2):
        v = act[:, c].numpy().ravel()
        edges = np.linspace(float(lo[c]), float(hi[c]), 9)
        ref, _ = np.histogram(np.clip(v, edges[0], edges[-1]), bins=edges)
        assert hist.counts[c].numpy().tolist() == ref.tolist()
    const = ChannelHistograms(torch.tensor([2.0]), torch.tensor([2.0]), bins=4)
    const.update(torch.tensor([[[[2.0, 3.5, 9.0, -1.0]]]]))
    assert const.counts.tolist() == [[2.0, 1.0, 0.0, 1.0]]  # unit-width bins from the constant value


def test_hooks_cover_every_encoder_stage_and_decoder_block(tiny_model: nn.Module) -> None:
    seen: dict[str, tuple[int, ...]] = {}
    with capture(tiny_model, lambda name, act: seen.setdefault(name, tuple(act.shape))):
        tiny_model(torch.rand(2, 3, 16, 16))
    assert seen == {"enc0": (2, 4, 16, 16), "enc1": (2, 6, 8, 8), "dec0": (2, 4, 8, 8), "dec1": (2, 4, 16, 16)}
    assert not tiny_model._forward_hooks and not tiny_model.encoder._forward_hooks  # removed afterwards
    plain = nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU())
    assert len(hook_points(plain)) == 2  # fallback: named children


def test_identity_is_zero_and_distance_grows_with_strength(tiny_model: nn.Module, tiny_volume: np.ndarray) -> None:
    shifts = [("gaussian_noise", 0.0), ("gaussian_noise", 0.02), ("gaussian_noise", 0.1), ("gaussian_noise", 0.4)]
    r = shift_report({"tiny": tiny_model}, tiny_volume, shifts, n_tiles=6, tile=16, bins=32)
    m = r["models"]["tiny"]
    assert m["layers"] == ["enc0", "enc1", "dec0", "dec1"]
    assert m["channels"] == {"enc0": 4, "enc1": 6, "dec0": 4, "dec1": 4}
    # equal values per channel in every layer: half the coarsest layer's 8x8 positions per tile
    assert m["values_per_channel"] == {layer: 6 * 32 for layer in m["layers"]}
    assert m["null_values_per_half"] == m["values_per_channel"]
    labels = [s["label"] for s in r["shifts"]]
    assert labels == ["gaussian_noise=0", "gaussian_noise=0.02", "gaussian_noise=0.1", "gaussian_noise=0.4"]
    assert all(v == pytest.approx(0.0, abs=1e-7) for v in m["scores"][labels[0]].values())  # identity: corrected 0
    for layer in m["layers"]:  # corrected = raw − null; the identity's raw is the null (A vs B unshifted)
        assert m["null"][layer] > 0 and m["raw"][labels[0]][layer] == pytest.approx(m["null"][layer])
        for lab in labels:
            assert m["scores"][lab][layer] == pytest.approx(m["raw"][lab][layer] - m["null"][layer])
        series = [m["scores"][lab][layer] for lab in labels]
        # from the weakest real shift on the distance grows (0 vs 0.02: within the estimate's noise)
        assert all(a < b for a, b in zip(series[1:], series[2:])), (layer, series)
        assert 0.0 < series[-1] <= 1.0


def test_compare_full_and_pruned_unet(isbi_crop) -> None:
    from slicewise.models import build_model

    raw, _ = isbi_crop
    models = {}
    for skips in ("1111", "0111"):
        torch.manual_seed(0)
        models[skips] = build_model(
            encoder="tf_efficientnet_lite0", weights="imagenet", skips=skips, decoder_channels=(32, 16, 16, 8, 8)
        )
    r = shift_report(models, raw, ["contrast=0.5", "contrast=1"], n_tiles=4, tile=64)
    full, pruned = r["models"]["1111"], r["models"]["0111"]
    expected = ["enc_s2", "enc_s4", "enc_s8", "enc_s16", "enc_s32", "dec_s16", "dec_s8", "dec_s4", "dec_s2", "dec_s1"]
    assert full["layers"] == pruned["layers"] == expected
    assert all(v == pytest.approx(0.0, abs=1e-7) for v in full["scores"]["contrast=1"].values())
    enc = [layer for layer in expected if layer.startswith("enc")]
    assert [full["scores"]["contrast=0.5"][x] for x in enc] == [pruned["scores"]["contrast=0.5"][x] for x in enc]
    assert full["scores"]["contrast=0.5"]["dec_s2"] != pruned["scores"]["contrast=0.5"]["dec_s2"]
    assert all(0 < full["raw"]["contrast=0.5"][x] <= 1 for x in expected)
    assert len(set(full["values_per_channel"].values())) == 1  # stride 2 and stride 32 on an equal footing


def test_bad_shift_is_a_one_line_error(tiny_model: nn.Module, tiny_volume: np.ndarray) -> None:
    with pytest.raises(InputError, match="unknown shift"):
        shift_report(tiny_model, tiny_volume, ["sharpness=2"], n_tiles=2, tile=16)
    with pytest.raises(InputError, match="no shift"):
        shift_report(tiny_model, tiny_volume, [], n_tiles=2, tile=16)


def test_rgb_volume_takes_color_shifts(tiny_rgb_model: nn.Module, tiny_volume: np.ndarray) -> None:
    rgb = np.stack([tiny_volume, tiny_volume[::-1], 255 - tiny_volume], axis=-1)  # Z×Y×X×3
    r = shift_report(tiny_rgb_model, rgb, ["saturation=1", "saturation=0", "hue=0.3"], n_tiles=4, tile=16, bins=16)
    scores = r["models"]["model"]["scores"]
    assert all(v == pytest.approx(0.0, abs=1e-12) for v in scores["saturation=1"].values())
    raw = r["models"]["model"]["raw"]  # the color shifts reach the network (4 tiny tiles: too few to rank layers)
    assert all(v > 0.05 for v in raw["saturation=0"].values())
    assert all(v > 0.05 for v in raw["hue=0.3"].values())


def test_tile_counts_sum_to_counts_and_bootstrap_interval_is_bounded() -> None:
    from slicewise.diagnostics.hellinger import bootstrap_layer_score

    rng = np.random.default_rng(1)
    lo, hi = torch.tensor([-2.0, -2.0, -2.0]), torch.tensor([2.0, 2.0, 2.0])
    src, sh = ChannelHistograms(lo, hi, bins=8), ChannelHistograms(lo, hi, bins=8)
    act = torch.from_numpy(rng.normal(size=(6, 3, 4, 4)).astype(np.float32))
    src.update(act[:4])
    src.update(act[4:])
    sh.update(act * 1.5 + 0.3)
    assert src.tile_counts.shape == (6, 3, 8)
    assert torch.equal(src.tile_counts.double().sum(0), src.counts)
    assert (src.tile_counts.sum(2) == 16).all()  # every tile's 4x4 values in each channel's histogram
    v, low, high = bootstrap_layer_score(src.tile_counts, sh.tile_counts, n_resamples=200, seed=0)
    assert v == pytest.approx(float(hellinger(src.counts, sh.counts).mean()))
    assert 0.0 <= low <= v <= high <= 1.0 and high > low
    assert bootstrap_layer_score(src.tile_counts, sh.tile_counts, n_resamples=200, seed=0) == (v, low, high)  # seeded
    same = bootstrap_layer_score(src.tile_counts, src.tile_counts, n_resamples=50)
    assert same == (0.0, 0.0, 0.0)


def _two_sample_histograms(n: int, rng: np.random.Generator, channels: int = 400, bins: int = 16) -> list[torch.Tensor]:
    """Four independent samples of n values per channel from ONE distribution, binned on common edges."""
    lo, hi = torch.full((channels,), -2.5), torch.full((channels,), 2.5)
    out = []
    for _ in range(4):
        h = ChannelHistograms(lo, hi, bins=bins)
        h.update(torch.from_numpy(rng.normal(size=(1, channels, n)).astype(np.float32)))
        out.append(h.counts)
    return out


@pytest.mark.parametrize("n", [16, 64, 512, 4096])
def test_bias_corrected_distance_of_one_distribution_is_zero_for_any_sample_size(n: int) -> None:
    """Source and "shifted" drawn from the same distribution: the raw distance is biased upwards (the more
    the fewer values), the null-corrected distance is ~0 at every sample size."""
    from slicewise.diagnostics.hellinger import layer_distance

    src, same, half_a, half_b = _two_sample_histograms(n, np.random.default_rng(n))
    d = layer_distance(src, same, half_a, half_b)
    assert d["raw"] > 0.02  # plug-in bias: uncorrected, this would read as a shift
    assert d["corrected"] == pytest.approx(d["raw"] - d["null"])
    assert abs(d["corrected"]) < 0.1 * d["raw"] + 0.005


def test_shift_report_null_uses_disjoint_halves_of_the_unshifted_data(
    tiny_model: nn.Module, tiny_volume: np.ndarray
) -> None:
    """The null baseline does not depend on the shift; the corrected score is raw − null for every shift."""
    a = shift_report(tiny_model, tiny_volume, ["gaussian_noise=0.1"], n_tiles=4, tile=16, bins=16, n_resamples=0)
    b = shift_report(
        tiny_model,
        tiny_volume,
        ["gaussian_noise=0.4", "gaussian_noise=0.1"],
        n_tiles=4,
        tile=16,
        bins=16,
        n_resamples=0,
    )
    ma, mb = a["models"]["model"], b["models"]["model"]
    assert ma["null"] == mb["null"] and ma["scores"]["gaussian_noise=0.1"] == mb["scores"]["gaussian_noise=0.1"]
