"""Train-time augmentation of 2.5D batches, in torch (on the batch's device).

A batch is ``x`` (N, k·C, H, W) — k slices of C colour channels each, slice-major as
:func:`slicewise.data.stacking.stack_slices` builds it — with labels ``y`` (N, H, W) and any extra
targets of the same H×W (e.g. a boundary map, (N, H, W) or (N, T, H, W)).

Per sample, independently:

- **geometric** (on x, y and extras alike): flip along y and along x (each with probability
  ``flip``), rotate by 90°, 180° or 270° (probability ``rot90``; only 180° when H ≠ W, so shapes
  stay), and reverse the slice order of x (probability ``z_reverse``; colour order within a slice
  is kept, the centre slice stays in the middle);
- **intensity** (x only, in this order): brightness (add b), contrast (scale about each H×W
  plane's mean by c), gamma (x**g), Gaussian noise (sigma s), Gaussian blur (sigma px, in-plane),
  each with its probability and a value drawn uniformly from its range; x is clipped to [0, 1]
  after each step. The steps are :mod:`slicewise.data.shifts`' kernels (``adjust_brightness``,
  ``adjust_contrast``, ``adjust_gamma``, ``add_noise``, ``gaussian_blur``) with one value per sample.

x is returned as float32 in [0, 1] (integer input is converted by ``to_unit_float``); y and extras
keep their dtype. numpy input gives numpy output. Randomness comes only from ``generator``
(a ``torch.Generator`` or an int seed for a CPU one): the same seed gives the same batch on the same
device. The parameters are drawn on the generator's device; with a generator on x's device (the
device-resident training path) the whole augmentation runs there without a host round trip: the
geometric part is three ``torch.where`` (:func:`dihedral`), noise is drawn from the generator and blur
is one grouped convolution (:func:`batched_blur`). With a CPU generator (and on CPU) every draw, and
so every batch, is exactly what it was before the device path existed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from slicewise.data.shifts import add_noise, adjust_brightness, adjust_contrast, adjust_gamma, gaussian_blur
from slicewise.data.stacking import to_unit_float
from slicewise.errors import ConfigError, InputError


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities (0–1) and uniform ranges of the train-time augmentations.

    ``brightness_range`` additive offset; ``contrast_range`` and ``gamma_range`` factors/exponents;
    ``noise_range`` noise sigma; ``blur_range`` blur sigma in pixels.
    """

    flip: float = 0.5
    rot90: float = 0.5
    z_reverse: float = 0.5
    brightness: float = 0.5
    brightness_range: tuple[float, float] = (-0.1, 0.1)
    contrast: float = 0.5
    contrast_range: tuple[float, float] = (0.75, 1.33)
    gamma: float = 0.3
    gamma_range: tuple[float, float] = (0.75, 1.33)
    noise: float = 0.3
    noise_range: tuple[float, float] = (0.0, 0.05)
    blur: float = 0.2
    blur_range: tuple[float, float] = (0.5, 1.5)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_range"):
                if len(value) != 2 or value[0] > value[1]:
                    raise ConfigError(f"augmentation {f.name}={value} must be (low, high) with low <= high")
            elif not 0.0 <= float(value) <= 1.0:
                raise ConfigError(f"augmentation probability {f.name}={value} must be in [0, 1]")
        if self.gamma_range[0] <= 0 or self.contrast_range[0] < 0 or self.noise_range[0] < 0 or self.blur_range[0] < 0:
            raise ConfigError("augmentation gamma must be > 0 and contrast, noise and blur >= 0")

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> AugmentConfig:
        """Build from a plain dict (e.g. a YAML block); unknown keys raise a one-line ConfigError."""
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown augmentation option(s) {', '.join(unknown)}: use {', '.join(sorted(known))}")
        for key, value in values.items():
            if key.endswith("_range"):
                values[key] = tuple(float(v) for v in value)
        return cls(**values)

    @classmethod
    def off(cls) -> AugmentConfig:
        """No augmentation at all (every probability 0)."""
        return cls(**{f.name: 0.0 for f in fields(cls) if not f.name.endswith("_range")})


def reverse_slices(x: torch.Tensor, colors: int = 1) -> torch.Tensor:
    """Reverse the slice order of stacks (..., k·C, H, W), keeping the colour order in each slice."""
    kc, h, w = x.shape[-3:]
    if colors < 1 or kc % colors:
        raise InputError(f"{kc} channels are not a whole number of slices of {colors} colour channels")
    lead = x.shape[:-3]
    return x.reshape(*lead, kc // colors, colors, h, w).flip(-4).reshape(*lead, kc, h, w)


def _as_generator(generator: torch.Generator | int | None) -> torch.Generator:
    if isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, np.random.Generator):
        return torch.Generator().manual_seed(int(generator.integers(2**62)))
    seed = int(torch.randint(2**62, (1,)).item()) if generator is None else int(generator)
    return torch.Generator().manual_seed(seed)


def _per_sample(mask: torch.Tensor, ndim: int) -> torch.Tensor:
    return mask.reshape(-1, *([1] * (ndim - 1)))


def pick(mask: torch.Tensor, yes: torch.Tensor, no: torch.Tensor) -> torch.Tensor:
    """Per sample ``yes[i]`` where ``mask[i]`` else ``no[i]``: whole samples picked by one ``index_select``
    from ``[no; yes]`` (contiguous copies; several times faster than a broadcast ``torch.where`` on a CPU)."""
    n = mask.shape[0]
    idx = torch.arange(n, device=no.device) + n * mask.to(no.device, torch.int64)
    return torch.cat([no.contiguous(), yes.contiguous()]).index_select(0, idx)


def dihedral(flip_y: torch.Tensor, flip_x: torch.Tensor, rot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The per-sample transform "flip y, flip x, then ``torch.rot90`` by ``rot`` quarter turns" written as
    "transpose (T), then flip y, then flip x" (an element of the dihedral group of the square), so a batch
    is transformed with three ``torch.where`` and no data-dependent host work.

    With ``a``, ``b`` the flips: 0 turns → (0, a, b); 1 → (1, ¬b, a); 2 → (0, ¬a, ¬b); 3 → (1, b, ¬a)
    (``rot90`` by one turn = transpose ∘ flip x = flip y ∘ transpose; a transpose swaps the flip axes)."""
    odd = rot % 2 == 1
    fy = torch.where(rot == 0, flip_y, torch.where(rot == 1, ~flip_x, torch.where(rot == 2, ~flip_y, flip_x)))
    fx = torch.where(rot == 0, flip_x, torch.where(rot == 1, flip_y, torch.where(rot == 2, ~flip_x, ~flip_y)))
    return odd, fy, fx


def geometric(t: torch.Tensor, flip_y: torch.Tensor, flip_x: torch.Tensor, rot: torch.Tensor,
               rotations: bool = True, flips: bool = True) -> torch.Tensor:
    """Apply per-sample flips and rotations (over the last two axes) to a batch ``t`` (N, ..., H, W): for
    sample i, ``rot90(flip_x(flip_y(t_i)), rot_i)``, computed through :func:`dihedral` (exactly equal).
    ``rotations`` / ``flips`` False skip the steps a configuration rules out (probability 0), whose masks
    are then all false: a static choice, not a look at the drawn values."""
    if not rotations and not flips:
        return t
    transpose, fy, fx = dihedral(flip_y, flip_x, rot)
    if rotations and t.shape[-1] == t.shape[-2]:
        t = pick(transpose, t.transpose(-2, -1), t)
    t = pick(fy, t.flip(-2), t)
    return pick(fx, t.flip(-1), t)


def _uniform(rng: torch.Generator, n: int, bounds: tuple[float, float]) -> torch.Tensor:
    lo, hi = bounds
    return lo + (hi - lo) * torch.rand(n, generator=rng, dtype=torch.float64, device=rng.device)


def batched_blur(x: torch.Tensor, sigma: torch.Tensor, on: torch.Tensor, max_sigma: float | None = None) -> torch.Tensor:
    """Gaussian blur of every H×W plane of sample i with its own ``sigma[i]`` px where ``on[i]`` (identity
    elsewhere), all samples in one grouped separable convolution: no per-sample loop, no host round trip.
    Equals :func:`slicewise.data.shifts.gaussian_blur` per sample (kernel ±ceil(3σ), reflect borders) up
    to float round-off (separable vs 2-D kernel, < 1e-6). The kernel spans ±ceil(3·``max_sigma``) (default
    the largest ``sigma``, which reads it back to the host; pass the range's upper end to avoid that)."""
    n, c, h, w = x.shape
    limit = min(h, w) - 1
    if limit < 1 or n == 0:
        return x
    s = sigma.to(x.device, torch.float64).clamp_min(1e-12)
    radius = torch.clamp(torch.ceil(3 * s), max=limit)
    big = int(min(limit, math.ceil(3 * float(sigma.max() if max_sigma is None else max_sigma))))
    pos = torch.arange(-big, big + 1, device=x.device, dtype=torch.float64)
    k = torch.exp(-0.5 * (pos[None] / s[:, None]) ** 2) * (pos[None].abs() <= radius[:, None])
    k = (k / k.sum(1, keepdim=True)).to(x.dtype)
    planes = x.reshape(1, n * c, h, w)
    kern = k.repeat_interleave(c, dim=0)
    planes = F.pad(planes, (big, big, big, big), mode="reflect")
    planes = F.conv2d(planes, kern[:, None, :, None], groups=n * c)
    planes = F.conv2d(planes, kern[:, None, None, :], groups=n * c)
    return torch.where(_per_sample(on.to(x.device), 4), planes.reshape(n, c, h, w), x)


@dataclass(frozen=True)
class GeometryDraws:
    """The first draws of :func:`augment` for a batch of ``n``: ``draw`` (n, 9) uniforms (flip y, flip x, rot90,
    z-reversal, then the on/off draws of brightness, contrast, gamma, noise, blur), the per-sample
    ``flip_y``/``flip_x``/``zrev`` masks and ``rot`` quarter turns (on the generator's device), and which
    steps the configuration allows at all (``rotations``, ``flips``, ``reverse``: static, not data)."""

    draw: torch.Tensor
    flip_y: torch.Tensor
    flip_x: torch.Tensor
    rot: torch.Tensor
    zrev: torch.Tensor
    rotations: bool
    flips: bool
    reverse: bool


def draw_geometry(n: int, h: int, w: int, config: AugmentConfig, rng: torch.Generator) -> GeometryDraws:
    """Draw the geometric part of :func:`augment` (and the intensity on/off uniforms) from ``rng``, exactly as
    ``augment`` does first; :func:`augment_intensity` then draws the rest. Used by the device-resident
    sampler, which applies the geometry inside its gather (:meth:`DevicePatchSampler.sample`)."""
    gdev = rng.device
    draw = torch.rand(n, 9, generator=rng, device=gdev)
    flip_y, flip_x = draw[:, 0] < config.flip, draw[:, 1] < config.flip
    turns = torch.randint(1, 4, (n,), generator=rng, device=gdev) if h == w else torch.full((n,), 2, device=gdev)
    rot = torch.where(draw[:, 2] < config.rot90, turns, torch.zeros_like(turns))
    zrev = draw[:, 3] < config.z_reverse
    return GeometryDraws(draw, flip_y, flip_x, rot, zrev, rotations=config.rot90 > 0,
                         flips=config.flip > 0 or config.rot90 > 0, reverse=config.z_reverse > 0)


def augment_intensity(xt: torch.Tensor, geo: GeometryDraws, config: AugmentConfig, rng: torch.Generator,
                      clipped: bool = False) -> torch.Tensor:
    """The intensity part of :func:`augment` on unit-float ``xt`` (N, k·C, H, W), drawing from ``rng`` right
    after :func:`draw_geometry`; ``clipped``: ``xt`` is known to lie in [0, 1] (converted from integers), so
    without intensity steps the final clip is skipped (it would change nothing)."""
    n, dev, draw, gdev = xt.shape[0], xt.device, geo.draw, rng.device

    def scalar(on: torch.Tensor, values: torch.Tensor, identity: float) -> torch.Tensor:
        return _per_sample(torch.where(on, values, torch.full_like(values, identity)), 4).to(dev, xt.dtype)

    if config.brightness > 0:
        b = scalar(draw[:, 4] < config.brightness, _uniform(rng, n, config.brightness_range), 0.0)
        xt = adjust_brightness(xt, b)
    if config.contrast > 0:
        c = scalar(draw[:, 5] < config.contrast, _uniform(rng, n, config.contrast_range), 1.0)
        xt = adjust_contrast(xt, c)
    if config.gamma > 0:
        g = scalar(draw[:, 6] < config.gamma, _uniform(rng, n, config.gamma_range), 1.0)
        xt = adjust_gamma(xt, g)
    if config.noise > 0:
        s = scalar(draw[:, 7] < config.noise, _uniform(rng, n, config.noise_range), 0.0)
        if gdev.type == "cpu":  # a CPU generator seeds one on x's device (unchanged since the worker path)
            seed = int(torch.randint(2**62, (1,), generator=rng).item())
            noise = torch.randn(xt.shape, generator=torch.Generator(device=dev).manual_seed(seed), device=dev, dtype=xt.dtype)
        else:  # a generator on the device draws the noise itself: no host round trip
            noise = torch.randn(xt.shape, generator=rng, device=dev, dtype=xt.dtype)
        xt = add_noise(xt, s, noise)
    if config.blur > 0:
        sigmas = _uniform(rng, n, config.blur_range)
        if dev.type != "cpu":
            xt = batched_blur(xt, sigmas, draw[:, 8] < config.blur, config.blur_range[1])
        elif chosen := torch.nonzero(draw[:, 8] < config.blur).flatten().tolist():
            xt = xt.clone()
            for i in chosen:
                xt[i] = gaussian_blur(xt[i], float(sigmas[i]))
    intensity = any(getattr(config, name) > 0 for name in ("brightness", "contrast", "gamma", "noise", "blur"))
    return xt.clamp(0.0, 1.0) if intensity or not clipped else xt


def augment(
    x: Any,
    y: Any = None,
    *extra: Any,
    config: AugmentConfig | None = None,
    generator: torch.Generator | int | None = None,
    colors: int = 1,
) -> tuple[Any, ...]:
    """Augment a batch (see the module docstring); returns ``(x, y, *extra)`` in the same order.

    ``colors``: colour channels per slice (1 gray, 3 RGB) for the z-reversal. Equals
    :func:`draw_geometry`, the geometry on x (in its own dtype) and the targets, ``to_unit_float``, then
    :func:`augment_intensity`.
    """
    config = config or AugmentConfig()
    was_numpy = not isinstance(x, torch.Tensor)
    xt = torch.from_numpy(np.ascontiguousarray(x)) if was_numpy else x
    if xt.ndim != 4:
        raise InputError(f"augment takes a batch x of shape (N, k·C, H, W), got {tuple(xt.shape)}")
    n, _, h, w = xt.shape
    targets = [None if t is None else (torch.from_numpy(np.ascontiguousarray(t)) if was_numpy else t) for t in (y, *extra)]
    for t in targets:
        if t is not None and (t.shape[0] != n or tuple(t.shape[-2:]) != (h, w)):
            raise InputError(f"target of shape {tuple(t.shape)} does not match the batch x {tuple(xt.shape)}")
    rng = _as_generator(generator)
    geo = draw_geometry(n, h, w, config, rng)
    dev = xt.device
    # geometry on the raw dtype (uint8: a quarter of float32's bytes), then the unit-float conversion;
    # permutations commute with it, so the result is the same as converting first
    xt = geometric(xt, geo.flip_y.to(dev), geo.flip_x.to(dev), geo.rot.to(dev), geo.rotations, geo.flips)
    if geo.reverse:
        xt = pick(geo.zrev, reverse_slices(xt, colors), xt)
    clipped = not xt.dtype.is_floating_point  # integer input converts into [0, 1] exactly
    xt = to_unit_float(xt)
    targets = [None if t is None else geometric(t, geo.flip_y.to(t.device), geo.flip_x.to(t.device), geo.rot.to(t.device),
                                                 geo.rotations, geo.flips) for t in targets]
    xt = augment_intensity(xt, geo, config, rng, clipped)
    out = [xt, *targets]
    if was_numpy:
        out = [None if t is None else t.numpy() for t in out]
    return tuple(out)
