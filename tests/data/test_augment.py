"""Train-time augmentation: geometry shared by x and targets, z-reversal, intensity on x only."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from slicewise.data.augment import AugmentConfig, augment, reverse_slices
from slicewise.errors import ConfigError

INTENSITY_ONLY = AugmentConfig(flip=0, rot90=0, z_reverse=0, brightness=1, contrast=1, gamma=1, noise=1, blur=1)
STRONG = AugmentConfig(
    flip=1,
    rot90=1,
    z_reverse=1,
    brightness=1,
    brightness_range=(-0.8, 0.8),
    contrast=1,
    contrast_range=(0.2, 4.0),
    gamma=1,
    gamma_range=(0.3, 3.0),
    noise=1,
    noise_range=(0.1, 0.5),
    blur=1,
)

NO_INTENSITY = dict(brightness=0.0, contrast=0.0, gamma=0.0, noise=0.0, blur=0.0)  # geometric augmentation only


def _batch(n: int = 6, k: int = 3, h: int = 16, w: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, k, h, w, generator=g), torch.randint(0, 3, (n, h, w), generator=g)


@pytest.mark.parametrize("k, colors", [(1, 1), (3, 1), (5, 1), (3, 3)])
def test_z_reversal_is_an_involution_keeping_centre_and_color_order(k: int, colors: int) -> None:
    x = torch.arange(2 * k * colors * 4, dtype=torch.float32).reshape(2, k * colors, 2, 2)
    rev = reverse_slices(x, colors)
    torch.testing.assert_close(reverse_slices(rev, colors), x)
    r = (k - 1) // 2
    centre = slice(r * colors, (r + 1) * colors)
    torch.testing.assert_close(rev[:, centre], x[:, centre])
    torch.testing.assert_close(rev[:, :colors], x[:, (k - 1) * colors :])  # first slice ↔ last, colors in order


@pytest.mark.parametrize("shape", [(16, 16), (12, 20)])
def test_geometric_transform_is_shared_by_x_and_targets(shape: tuple[int, int]) -> None:
    y = torch.randint(0, 5, (8, *shape), generator=torch.Generator().manual_seed(1))
    x = y[:, None].repeat(1, 3, 1, 1).float() / 4.0
    boundary = (y == 2).to(torch.uint8)
    cfg = AugmentConfig(flip=0.5, rot90=0.5, z_reverse=0.5, **NO_INTENSITY)
    xa, ya, ba = augment(x, y, boundary, config=cfg, generator=3)
    assert ya.dtype == y.dtype and ba.dtype == torch.uint8 and xa.shape == x.shape
    for c in range(3):
        torch.testing.assert_close(xa[:, c], ya.float() / 4.0)
    torch.testing.assert_close(ba, (ya == 2).to(torch.uint8))
    assert not torch.equal(ya, y)  # something happened


def test_geometry_and_z_reversal_on_real_content() -> None:
    x, y = _batch(n=4)
    cfg = AugmentConfig(flip=1.0, rot90=0.0, z_reverse=1.0, **NO_INTENSITY)
    xa, ya = augment(x, y, config=cfg, generator=0)
    torch.testing.assert_close(xa, x.flip(-1).flip(-2).flip(1))
    torch.testing.assert_close(ya, y.flip(-1).flip(-2))


def test_intensity_never_touches_targets() -> None:
    x, y = _batch()
    extra = torch.rand(6, 2, 16, 16)
    xa, ya, ea = augment(x, y, extra, config=INTENSITY_ONLY, generator=5)
    assert torch.equal(ya, y) and torch.equal(ea, extra)
    assert not torch.allclose(xa, x)


def test_values_stay_in_unit_range_and_uint8_is_converted() -> None:
    x = torch.randint(0, 256, (6, 3, 16, 16), dtype=torch.uint8)
    xa, _ = augment(x, None, config=STRONG, generator=2)
    assert xa.dtype == torch.float32 and float(xa.min()) >= 0.0 and float(xa.max()) <= 1.0


def test_determinism_and_numpy_roundtrip() -> None:
    x, y = _batch()
    a = augment(x, y, generator=7)
    b = augment(x, y, generator=torch.Generator().manual_seed(7))
    c = augment(x, y, generator=8)
    torch.testing.assert_close(a[0], b[0])
    assert torch.equal(a[1], b[1]) and not torch.allclose(a[0], c[0])
    xn, yn = augment(x.numpy(), y.numpy(), generator=7)
    assert isinstance(xn, np.ndarray) and isinstance(yn, np.ndarray)
    np.testing.assert_allclose(xn, a[0].numpy(), atol=1e-6)


def test_off_is_identity_and_config_errors() -> None:
    x, y = _batch()
    xa, ya = augment(x, y, config=AugmentConfig.off(), generator=1)
    torch.testing.assert_close(xa, x)
    assert torch.equal(ya, y)
    assert AugmentConfig.from_dict({"flip": 0.2, "gamma_range": [0.9, 1.1]}).gamma_range == (0.9, 1.1)
    for bad in ({"flipp": 0.5}, {"flip": 1.5}, {"gamma_range": (1.2, 0.8)}):
        with pytest.raises(ConfigError) as err:
            AugmentConfig.from_dict(bad)
        assert "\n" not in str(err.value)


def _rot90_loop(t: torch.Tensor, fy: torch.Tensor, fx: torch.Tensor, rot: torch.Tensor) -> torch.Tensor:
    """Independent reference: the per-sample flips then torch.rot90, one sample at a time."""
    out = []
    for i in range(t.shape[0]):
        s = t[i]
        s = s.flip(-2) if fy[i] else s
        s = s.flip(-1) if fx[i] else s
        out.append(torch.rot90(s, int(rot[i]), dims=(-2, -1)))
    return torch.stack(out)


def test_batched_dihedral_transform_equals_flips_then_rot90_for_all_16_cases() -> None:
    from slicewise.data.augment import geometric

    cases = torch.tensor([(a, b, q) for a in (0, 1) for b in (0, 1) for q in range(4)])
    fy, fx, rot = cases[:, 0].bool(), cases[:, 1].bool(), cases[:, 2]
    t = torch.arange(16 * 2 * 5 * 5).reshape(16, 2, 5, 5)
    assert torch.equal(geometric(t, fy, fx, rot), _rot90_loop(t, fy, fx, rot))
    rect = torch.arange(16 * 3 * 4).reshape(16, 3, 4)  # non-square: only 180° turns occur
    even = rot % 2 * 0 + (rot > 0) * 2
    assert torch.equal(geometric(rect, fy, fx, even), _rot90_loop(rect, fy, fx, even))


HALF = AugmentConfig(
    flip=0,
    rot90=0,
    z_reverse=0,
    brightness=0.5,
    contrast=0.5,
    gamma=0.5,
    noise=0.5,
    blur=0.5,
    brightness_range=(-0.3, 0.3),
    contrast_range=(0.5, 2.0),
    gamma_range=(0.5, 2.0),
    noise_range=(0.05, 0.2),
)


def _reference_intensity(x: np.ndarray, config: AugmentConfig, seed: int) -> np.ndarray:
    """An independent re-statement of the intensity steps in numpy (float32, plain formulas, scipy blur),
    replaying the documented draw order of a CPU generator: geometry uniforms (n, 9) and turns, one value
    per sample per step, then one noise seed; sample i's noise comes from a generator seeded with the first
    word of SeedSequence([that seed, i]), halved."""
    from scipy.ndimage import gaussian_filter

    n, h, w = x.shape[0], x.shape[2], x.shape[3]
    g = torch.Generator().manual_seed(seed)
    draw = torch.rand(n, 9, generator=g)
    torch.randint(1, 4, (n,), generator=g)
    names = ("brightness", "contrast", "gamma", "noise", "blur")
    values = {}
    for name in names:
        lo, hi = getattr(config, f"{name}_range")
        values[name] = (lo + (hi - lo) * torch.rand(n, generator=g, dtype=torch.float64)).numpy()
    base = int(torch.randint(2**62, (1,), generator=g).item())

    def noise(i: int) -> np.ndarray:
        seed_i = int(np.random.SeedSequence([base, i]).generate_state(1, np.uint64)[0]) // 2
        return torch.randn(x.shape[1:], generator=torch.Generator().manual_seed(seed_i)).numpy()

    out = x.copy()
    for i in range(n):
        v = out[i]
        on = {name: bool(draw[i, 4 + j] < getattr(config, name)) for j, name in enumerate(names)}
        f32 = {name: np.float32(values[name][i]) for name in names}
        if on["brightness"]:
            v = np.clip(v + f32["brightness"], 0, 1)
        if on["contrast"]:
            m = v.mean(axis=(-2, -1), keepdims=True)
            v = np.clip((v - m) * f32["contrast"] + m, 0, 1)
        if on["gamma"]:
            v = v ** f32["gamma"]
        if on["noise"]:
            v = np.clip(v + f32["noise"] * noise(i), 0, 1)
        if on["blur"]:
            s = float(values["blur"][i])
            r = min(int(np.ceil(3 * s)), h - 1, w - 1)
            v = np.clip(gaussian_filter(v.astype(np.float64), (0, s, s), mode="mirror", radius=(0, r, r)), 0, 1)
        out[i] = v
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_intensity_steps_follow_their_draws_per_sample(seed: int) -> None:
    """Each sample gets exactly the steps drawn for it, with its values, in the documented order."""
    x = torch.rand(12, 3, 16, 16, generator=torch.Generator().manual_seed(seed + 10))
    got, _ = augment(x, None, config=HALF, generator=seed)
    np.testing.assert_allclose(got.numpy(), _reference_intensity(x.numpy(), HALF, seed), atol=2e-6, rtol=0)
    assert torch.equal(
        x, torch.rand(12, 3, 16, 16, generator=torch.Generator().manual_seed(seed + 10))
    )  # input untouched
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1 if before > 1 else 2)  # one intra-op thread or several: the same batch
        assert torch.equal(augment(x, None, config=HALF, generator=seed)[0], got)
    finally:
        torch.set_num_threads(before)


def test_batched_intensity_equals_the_per_sample_chains() -> None:
    """The batched way (the GPU one) and the per-sample chains (the CPU one) agree (noise aside: the two
    draw it differently) and leave the generator in the same state."""
    from slicewise.data.augment import apply_intensity, draw_geometry, draw_intensity

    config = AugmentConfig(**{**vars(HALF), "noise": 0.0})
    x = torch.rand(10, 3, 20, 20, generator=torch.Generator().manual_seed(3))
    results, states = [], []
    for batched in (False, True):
        g = torch.Generator().manual_seed(5)
        geo = draw_geometry(10, 20, 20, config, g)
        results.append(apply_intensity(x, draw_intensity(tuple(x.shape), x.device, config, geo, g, batched)))
        states.append(g.get_state())
    torch.testing.assert_close(results[0], results[1], atol=1e-6, rtol=0)
    assert torch.equal(states[0], states[1])  # the same draws either way: the next batch does not depend on it
    assert not torch.allclose(results[0], x)


def test_a_generator_on_the_batch_device_gives_the_cpu_path_on_cpu() -> None:
    """On CPU the device path (generator on x's device) is the worker path's augmentation, bit for bit."""
    x, y = _batch(seed=4)
    a = augment(x, y, config=STRONG, generator=torch.Generator(device="cpu").manual_seed(9))
    b = augment(x, y, config=STRONG, generator=9)
    assert all(torch.equal(p, q) for p, q in zip(a, b))
