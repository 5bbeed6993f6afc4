"""Train-time augmentation of 2.5D batches, in torch (on the batch's device).

A batch is ``x`` (N, k·C, H, W) — k slices of C color channels each, slice-major as
:func:`slicewise.data.stacking.stack_slices` builds it — with labels ``y`` (N, H, W) and any extra
targets of the same H×W (e.g. a boundary map, (N, H, W) or (N, T, H, W)).

Per sample, independently:

- **geometric** (on x, y and extras alike): flip along y and along x (each with probability
  ``flip``), rotate by 90°, 180° or 270° (probability ``rot90``; only 180° when H ≠ W, so shapes
  stay), and reverse the slice order of x (probability ``z_reverse``; color order within a slice
  is kept, the centre slice stays in the middle);
- **intensity** (x only, in this order): brightness (add b), contrast (scale about each H×W
  plane's mean by c), gamma (x**g), Gaussian noise (sigma s), Gaussian blur (sigma px, in-plane),
  each with its probability and a value drawn uniformly from its range; x is clipped to [0, 1]
  after each step. The steps are :mod:`slicewise.data.shifts`' in-place kernels (``adjust_brightness_``,
  ``adjust_contrast_``, ``adjust_gamma_``, ``add_noise_``, ``blur_planes``) with one value per sample.

x is returned as float32 in [0, 1] (integer input is converted by ``to_unit_float``); y and extras
keep their dtype. numpy input gives numpy output. Randomness comes only from ``generator``
(a ``torch.Generator`` or an int seed for a CPU one): the same seed gives the same batch on the same
device. The parameters are drawn on the generator's device; with a generator on x's device (the
device-resident training path) the whole augmentation runs there without a host round trip: the
geometric part is three index picks (:func:`dihedral`), noise is drawn from the generator and blur
is one batched separable filter (:func:`~slicewise.data.shifts.blur_planes`). On a CPU the intensity
steps touch only the samples they apply to (:func:`apply_intensity`). With a CPU generator the draws
do not depend on x's device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from slicewise.data.augment_config import AugmentConfig
from slicewise.data.shifts import add_noise_, adjust_brightness_, adjust_contrast_, adjust_gamma_, blur_planes
from slicewise.data.stacking import to_unit_float
from slicewise.errors import InputError


def reverse_slices(x: torch.Tensor, colors: int = 1) -> torch.Tensor:
    """Reverse the slice order of stacks (..., k·C, H, W), keeping the color order in each slice."""
    kc, h, w = x.shape[-3:]
    if colors < 1 or kc % colors:
        raise InputError(f"{kc} channels are not a whole number of slices of {colors} color channels")
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


def dihedral(
    flip_y: torch.Tensor, flip_x: torch.Tensor, rot: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The per-sample transform "flip y, flip x, then ``torch.rot90`` by ``rot`` quarter turns" written as
    "transpose (T), then flip y, then flip x" (an element of the dihedral group of the square), so a batch
    is transformed with three ``torch.where`` and no data-dependent host work.

    With ``a``, ``b`` the flips: 0 turns → (0, a, b); 1 → (1, ¬b, a); 2 → (0, ¬a, ¬b); 3 → (1, b, ¬a)
    (``rot90`` by one turn = transpose ∘ flip x = flip y ∘ transpose; a transpose swaps the flip axes)."""
    odd = rot % 2 == 1
    fy = torch.where(rot == 0, flip_y, torch.where(rot == 1, ~flip_x, torch.where(rot == 2, ~flip_y, flip_x)))
    fx = torch.where(rot == 0, flip_x, torch.where(rot == 1, flip_y, torch.where(rot == 2, ~flip_x, ~flip_y)))
    return odd, fy, fx


def geometric(
    t: torch.Tensor,
    flip_y: torch.Tensor,
    flip_x: torch.Tensor,
    rot: torch.Tensor,
    rotations: bool = True,
    flips: bool = True,
) -> torch.Tensor:
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
    ``augment`` does first; :func:`draw_intensity` then draws the rest. Used by the device-resident
    sampler, which applies the geometry inside its gather (:meth:`DevicePatchSampler.sample`)."""
    gdev = rng.device
    draw = torch.rand(n, 9, generator=rng, device=gdev)
    flip_y, flip_x = draw[:, 0] < config.flip, draw[:, 1] < config.flip
    turns = torch.randint(1, 4, (n,), generator=rng, device=gdev) if h == w else torch.full((n,), 2, device=gdev)
    rot = torch.where(draw[:, 2] < config.rot90, turns, torch.zeros_like(turns))
    zrev = draw[:, 3] < config.z_reverse
    return GeometryDraws(
        draw,
        flip_y,
        flip_x,
        rot,
        zrev,
        rotations=config.rot90 > 0,
        flips=config.flip > 0 or config.rot90 > 0,
        reverse=config.z_reverse > 0,
    )


INTENSITY_STEPS = ("brightness", "contrast", "gamma", "noise", "blur")
_IDENTITY = {"brightness": 0.0, "contrast": 1.0, "gamma": 1.0, "noise": 0.0, "blur": 0.0}
KERNELS = {"brightness": adjust_brightness_, "contrast": adjust_contrast_, "gamma": adjust_gamma_}


@dataclass(frozen=True)
class IntensityDraws:
    """Everything random about the intensity steps of one batch, drawn by :func:`draw_intensity` before the
    batch exists: per enabled step the on/off ``on`` (n,) and value ``values`` (n,) float64 of every
    sample; ``batched``: which way :func:`apply_intensity` runs. Batched: ``noise`` is the batch's noise.
    Per sample: ``chains[i]`` lists sample i's steps that are on, in order, with scalar values (x's dtype;
    blur sigmas as drawn), and ``noise`` maps each noisy sample to the seed of its noise (:func:`noise_seed`)."""

    on: dict[str, torch.Tensor]
    values: dict[str, torch.Tensor]
    noise: Any
    batched: bool
    blur_max: float
    chains: tuple[tuple[tuple[str, float], ...], ...] = ()


def draw_intensity(
    shape: tuple[int, ...],
    device: torch.device | str,
    config: AugmentConfig,
    geo: GeometryDraws,
    rng: torch.Generator,
    batched: bool | None = None,
    dtype: torch.dtype = torch.float32,
) -> IntensityDraws:
    """Draw the intensity part of :func:`augment` for a batch of ``shape`` (N, k·C, H, W) on ``device`` from
    ``rng``, right after :func:`draw_geometry`.

    Order: one value per sample for each enabled step (brightness, contrast, gamma, noise sigma, blur
    sigma: all n, whether the step is on for a sample or not), then the noise. Per sample: one seed from
    ``rng``; sample i's noise comes from its own generator (:func:`noise_seed`), drawn when its chain
    runs, so it does not depend on the other samples. Batched: one seed for the whole batch's noise from
    a CPU generator; from a device generator the noise itself (no host round trip).

    ``batched`` None: per sample on a CPU, batched elsewhere (see :func:`apply_intensity`)."""
    n, dev = int(shape[0]), torch.device(device)
    batched = dev.type != "cpu" if batched is None else batched
    steps = [name for name in INTENSITY_STEPS if getattr(config, name) > 0]
    on = {name: geo.draw[:, 4 + INTENSITY_STEPS.index(name)] < getattr(config, name) for name in steps}
    values = {name: _uniform(rng, n, getattr(config, f"{name}_range")) for name in steps}
    noisy = "noise" in on
    on_device = batched and rng.device.type != "cpu"  # a generator on the device draws the noise itself
    seed = int(torch.randint(2**62, (1,), generator=rng, device=rng.device).item()) if noisy and not on_device else 0
    blur_max = float(config.blur_range[1])
    if batched:
        noise = None
        if noisy:
            gen = rng if on_device else torch.Generator(device=dev).manual_seed(seed)
            noise = torch.randn(shape, generator=gen, device=dev, dtype=dtype)
        return IntensityDraws(on, values, noise, True, blur_max)
    return _per_sample_draws(n, on, values, steps, seed, blur_max, dtype)


def _per_sample_draws(
    n: int,
    on: dict[str, torch.Tensor],
    values: dict[str, torch.Tensor],
    steps: list[str],
    seed: int,
    blur_max: float,
    dtype: torch.dtype,
) -> IntensityDraws:
    """The per-sample form of the draws for ``n`` samples: each one's chain of (step, scalar value), noise seed."""
    flags = {name: mask.tolist() for name, mask in on.items()}
    scalars = {name: (v if name == "blur" else v.to(dtype)).tolist() for name, v in values.items()}
    chains = tuple(tuple((name, scalars[name][i]) for name in steps if flags[name][i]) for i in range(n))
    noise = {i: noise_seed(seed, i) for i in range(n) if flags["noise"][i]} if "noise" in on else {}
    return IntensityDraws(on, values, noise, False, blur_max, chains)


def noise_seed(seed: int, i: int) -> int:
    """The seed of sample i's noise (per-sample draws) in a batch whose noise seed is ``seed``: the first
    64-bit word of ``numpy.random.SeedSequence([seed, i])``, halved (a non-negative int64)."""
    return int(np.random.SeedSequence([seed, i]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def apply_intensity(
    xt: torch.Tensor, draws: IntensityDraws, clipped: bool = False, inplace: bool = False
) -> torch.Tensor:
    """Apply the intensity steps of ``draws`` to unit-float ``xt`` (N, k·C, H, W) with
    :mod:`slicewise.data.shifts`' in-place kernels; clipped to [0, 1] at the end.

    ``clipped``: ``xt`` is known to lie in [0, 1] (converted from integers), so without intensity steps the
    final clip is skipped; ``inplace``: the caller owns ``xt`` (a fresh conversion), which is overwritten.

    Per sample (the CPU way): :func:`intensity_chain` for each sample, touching only the steps that are on
    for it (the cost follows the probabilities), in place with scalar values (no allocation per step,
    which on a CPU costs more than the arithmetic). Batched (the GPU way): every step runs on the whole
    batch with identity values where it is off (no host round trip). Both agree up to float round-off
    given the same noise."""
    if not draws.on:
        return xt if clipped else xt.clamp(0.0, 1.0)
    xt = xt if inplace else xt.clone()
    if not clipped:
        xt.clamp_(0.0, 1.0)
    if not draws.batched:
        for i in range(xt.shape[0]):
            intensity_chain(xt[i], draws, i)  # every step leaves its sample in [0, 1]
        return xt
    dev = xt.device
    for name, on in draws.on.items():
        values = draws.values[name]
        if name == "blur":
            xt = torch.where(_per_sample(on.to(dev), 4), blur_planes(xt, values, draws.blur_max), xt)
            continue
        v = _per_sample(torch.where(on, values, torch.full_like(values, _IDENTITY[name])), 4).to(dev, xt.dtype)
        if name == "noise":
            add_noise_(xt, v, draws.noise)
        else:
            KERNELS[name](xt, v)
    return xt.clamp_(0.0, 1.0)


def intensity_chain(x: torch.Tensor, draws: IntensityDraws, i: int) -> torch.Tensor:
    """Sample i's intensity steps (per-sample ``draws``) on its unit-float ``x`` (k·C, H, W) in [0, 1], in
    place, in order; its noise is drawn here from its own generator. Returns ``x``, still in [0, 1]."""
    for name, value in draws.chains[i]:
        if name == "noise":
            gen = torch.Generator(device=x.device).manual_seed(draws.noise[i])
            add_noise_(x, value, torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype))
        elif name == "blur":
            blur_planes(x, value, out=x).clamp_(0.0, 1.0)  # weights sum to 1 up to round-off
        else:
            KERNELS[name](x, value)
    return x


def augment(
    x: Any,
    y: Any = None,
    *extra: Any,
    config: AugmentConfig | None = None,
    generator: torch.Generator | int | None = None,
    colors: int = 1,
) -> tuple[Any, ...]:
    """Augment a batch (see the module docstring); returns ``(x, y, *extra)`` in the same order.

    ``colors``: color channels per slice (1 gray, 3 RGB) for the z-reversal. Equals
    :func:`draw_geometry`, :func:`draw_intensity`, the geometry on x (in its own dtype) and the targets,
    ``to_unit_float``, then :func:`apply_intensity`.
    """
    config = config or AugmentConfig()
    was_numpy = not isinstance(x, torch.Tensor)
    xt = torch.from_numpy(np.ascontiguousarray(x)) if was_numpy else x
    if xt.ndim != 4:
        raise InputError(f"augment takes a batch x of shape (N, k·C, H, W), got {tuple(xt.shape)}")
    n, _, h, w = xt.shape
    targets = [
        None if t is None else (torch.from_numpy(np.ascontiguousarray(t)) if was_numpy else t) for t in (y, *extra)
    ]
    for t in targets:
        if t is not None and (t.shape[0] != n or tuple(t.shape[-2:]) != (h, w)):
            raise InputError(f"target of shape {tuple(t.shape)} does not match the batch x {tuple(xt.shape)}")
    rng = _as_generator(generator)
    geo = draw_geometry(n, h, w, config, rng)
    draws = draw_intensity(tuple(xt.shape), xt.device, config, geo, rng)  # per-sample noise is drawn meanwhile
    dev = xt.device
    # geometry on the raw dtype (uint8: a quarter of float32's bytes), then the unit-float conversion;
    # permutations commute with it, so the result is the same as converting first
    xt = geometric(xt, geo.flip_y.to(dev), geo.flip_x.to(dev), geo.rot.to(dev), geo.rotations, geo.flips)
    if geo.reverse:
        xt = pick(geo.zrev, reverse_slices(xt, colors), xt)
    clipped = not xt.dtype.is_floating_point  # integer input converts into [0, 1] exactly
    xt = to_unit_float(xt)
    targets = [
        None
        if t is None
        else geometric(
            t, geo.flip_y.to(t.device), geo.flip_x.to(t.device), geo.rot.to(t.device), geo.rotations, geo.flips
        )
        for t in targets
    ]
    xt = apply_intensity(xt, draws, clipped, inplace=clipped)  # integer input: a fresh conversion
    out = [xt, *targets]
    if was_numpy:
        out = [None if t is None else t.numpy() for t in out]
    return tuple(out)
