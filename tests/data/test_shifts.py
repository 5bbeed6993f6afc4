"""Synthetic domain shifts: identity, monotone strength, determinism, clipping, parsing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from slicewise.data.shifts import SHIFTS, apply_shift, parse_shift
from slicewise.errors import InputError


@pytest.fixture(scope="module")
def gray() -> np.ndarray:
    """A smooth-ish gray stack (3, 32, 32) in [0.2, 0.8]."""
    rng = np.random.default_rng(0)
    base = np.linspace(0.2, 0.8, 32, dtype=np.float32)[None, None, :] * np.ones((3, 32, 1), np.float32)
    return np.clip(base + 0.1 * rng.standard_normal((3, 32, 32)).astype(np.float32), 0.0, 1.0)


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.uniform(0.1, 0.9, size=(2, 3, 16, 16)).astype(np.float32)


@pytest.mark.parametrize("name", list(SHIFTS))
def test_identity_strength_returns_input_exactly(name: str, gray: np.ndarray, rgb: np.ndarray) -> None:
    _, identity = SHIFTS[name]
    x = rgb if name in ("saturation", "hue") else gray
    axis = -3 if name in ("saturation", "hue") else None
    out = apply_shift(x, name, identity, channel_axis=axis)
    np.testing.assert_array_equal(out, x)
    t = torch.from_numpy(x)
    assert torch.equal(apply_shift(t, name, identity, channel_axis=axis), t)


@pytest.mark.parametrize(
    "name, strengths, stat",
    [
        ("brightness", [-0.3, -0.1, 0.0, 0.1, 0.3], lambda y, x: y.mean()),
        ("contrast", [0.25, 0.5, 1.0, 1.5, 2.0], lambda y, x: y.std()),
        ("gamma", [0.5, 0.8, 1.0, 1.5, 2.5], lambda y, x: -y.mean()),
        ("gaussian_noise", [0.0, 0.02, 0.05, 0.1, 0.2], lambda y, x: (y - x).std()),
        ("gaussian_blur", [0.0, 0.5, 1.0, 2.0, 4.0], lambda y, x: -np.abs(np.diff(y, axis=-1)).mean()),
    ],
)
def test_effect_is_monotone_in_strength(name: str, strengths: list[float], stat, gray: np.ndarray) -> None:
    values = [float(stat(apply_shift(gray, name, s), gray)) for s in strengths]
    assert all(a < b for a, b in zip(values, values[1:])), values


def test_rgb_shifts(rgb: np.ndarray) -> None:
    spread = [
        float(apply_shift(rgb, "saturation", s, channel_axis=-3).std(axis=1).mean()) for s in (0.0, 0.5, 1.0, 1.5)
    ]
    assert spread[0] < 1e-6 and all(a < b for a, b in zip(spread, spread[1:]))
    shifted = apply_shift(rgb, "hue", 0.25, channel_axis=-3)
    assert np.abs(shifted - rgb).mean() > 0.05
    back = apply_shift(apply_shift(rgb, "hue", 0.5, channel_axis=-3), "hue", 0.5, channel_axis=-3)
    np.testing.assert_allclose(back, rgb, atol=1e-4)
    # channel-last layout gives the same result as channel-first
    last = apply_shift(np.moveaxis(rgb, 1, -1), "saturation", 0.3, channel_axis=-1)
    np.testing.assert_allclose(
        np.moveaxis(last, -1, 1), apply_shift(rgb, "saturation", 0.3, channel_axis=-3), atol=1e-6
    )
    with pytest.raises(InputError):
        apply_shift(rgb, "hue", 0.1)


def test_blur_is_in_plane_only(gray: np.ndarray) -> None:
    x = np.zeros((3, 16, 16), np.float32)
    x[1, 8, 8] = 1.0
    out = apply_shift(x, "gaussian_blur", 1.0)
    assert out[0].max() == 0 and out[2].max() == 0 and out[1].max() < 1.0
    np.testing.assert_allclose(out[1].sum(), 1.0, atol=1e-4)


@pytest.mark.parametrize("name, s", [("gaussian_noise", 0.1), ("gaussian_blur", 1.5), ("contrast", 0.6)])
def test_deterministic_and_backend_independent(name: str, s: float, gray: np.ndarray) -> None:
    a = apply_shift(gray, name, s, seed=3)
    b = apply_shift(gray, name, s, seed=3)
    np.testing.assert_array_equal(a, b)
    t = apply_shift(torch.from_numpy(gray), name, s, seed=3)
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32
    np.testing.assert_allclose(t.numpy(), a, atol=1e-6)
    if name == "gaussian_noise":
        assert not np.array_equal(a, apply_shift(gray, name, s, seed=4))


@pytest.mark.parametrize(
    "name, s", [("brightness", 0.9), ("brightness", -0.9), ("contrast", 5.0), ("gaussian_noise", 0.5)]
)
def test_outputs_clipped_to_unit_range(name: str, s: float, gray: np.ndarray) -> None:
    out = apply_shift(gray, name, s)
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert out.shape == gray.shape and out.dtype == gray.dtype


@pytest.mark.parametrize("h, w", [(32, 32), (9, 13), (3, 3)])
@pytest.mark.parametrize("sigma", [0.3, 0.8, 1.5, 4.0])
def test_blur_equals_scipy_gaussian_filter(h: int, w: int, sigma: float) -> None:
    """The one blur kernel against an independent reference: scipy's separable Gaussian in float64 with
    mirror borders (= torch's reflect) and radius ceil(3σ), capped at the plane size − 1."""
    from scipy.ndimage import gaussian_filter

    from slicewise.data.shifts import blur_planes

    x = np.random.default_rng(2).uniform(size=(2, 3, h, w)).astype(np.float32)
    radius = min(int(np.ceil(3 * sigma)), h - 1, w - 1)
    want = gaussian_filter(
        x.astype(np.float64), sigma=(0, 0, sigma, sigma), mode="mirror", radius=(0, 0, radius, radius)
    )
    got = blur_planes(torch.from_numpy(x), sigma)
    np.testing.assert_allclose(got.numpy(), want, atol=1e-6, rtol=0)
    np.testing.assert_allclose(apply_shift(x, "gaussian_blur", sigma), np.clip(want, 0, 1), atol=1e-6, rtol=0)
    out = torch.from_numpy(x.copy())
    assert blur_planes(out, sigma, out=out) is out  # in place onto its own input
    np.testing.assert_allclose(out.numpy(), want, atol=1e-6, rtol=0)


def test_blur_with_one_sigma_per_sample_equals_each_sample_alone() -> None:
    from slicewise.data.shifts import blur_planes

    x = torch.rand(5, 3, 16, 12, generator=torch.Generator().manual_seed(1))
    sigma = torch.tensor([0.5, 1.5, 0.9, 1.2, 0.2], dtype=torch.float64)
    got = blur_planes(x, sigma, max_sigma=1.5)
    for i in range(5):
        torch.testing.assert_close(got[i], blur_planes(x[i], float(sigma[i])), atol=1e-7, rtol=0)
    torch.testing.assert_close(blur_planes(x, sigma), got, atol=0, rtol=0)  # default width: the largest sigma


def test_parse_shift() -> None:
    assert parse_shift("contrast=0.5") == ("contrast", 0.5)
    assert parse_shift(" brightness = -0.1") == ("brightness", -0.1)
    for bad in ("sharpness=2", "contrast", "contrast=abc", "gamma=nan"):
        with pytest.raises(InputError) as err:
            parse_shift(bad)
        assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="brightness, contrast"):
        parse_shift("sharpness=2")
