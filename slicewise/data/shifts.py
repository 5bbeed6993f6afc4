"""Synthetic domain shifts: deterministic image transforms parameterised by one strength.

Input: float images in [0, 1], numpy arrays or torch tensors (any device), shape ``(..., H, W)``
(gray, or a stack of slices as channels) or with an RGB axis named by ``channel_axis``
(e.g. ``-3`` for ``(..., 3, H, W)``, ``-1`` for ``(H, W, 3)``; H, W are then the last two other
axes). The output has the input's type,
dtype, device and shape.

| name | strength s | effect | identity |
|---|---|---|---|
| ``brightness`` | offset | ``x + s`` | 0 |
| ``contrast`` | factor | ``(x - m)·s + m``, m = mean of each H×W plane | 1 |
| ``gamma`` | exponent | ``x ** s`` | 1 |
| ``gaussian_noise`` | sigma | ``x + s·N(0, 1)``, noise from a CPU ``torch.Generator`` seeded with ``seed`` | 0 |
| ``gaussian_blur`` | sigma (px) | in-plane Gaussian blur, reflect borders, per H×W plane | 0 |
| ``saturation`` | factor | blend with the luma image (torchvision); RGB only | 1 |
| ``hue`` | turn in [-0.5, 0.5] | rotate hue (torchvision); RGB only | 0 |

Every result is **clipped to [0, 1]**. At the identity strength every function returns its
input unchanged (the same object, not clipped). The same ``(x, strength, seed)`` always gives
the same output; noise is identical on CPU and GPU and for numpy and torch input.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF

from slicewise.errors import InputError

ShiftFn = Callable[..., Any]


def _prepare(x: Any, channel_axis: int | None, rgb: bool = False) -> tuple[torch.Tensor, bool, int | None]:
    """As a torch tensor with the color axis (if any) moved to -3, so that H, W are the last two
    axes; returns ``(tensor, was_numpy, axis to restore)``."""
    if isinstance(x, torch.Tensor):
        t, was_numpy = x, False
    else:
        a = np.asarray(x)
        if not np.issubdtype(a.dtype, np.floating):
            raise InputError(
                f"domain shifts take float images in [0, 1], got dtype {a.dtype}: convert with to_unit_float first"
            )
        t, was_numpy = torch.from_numpy(np.ascontiguousarray(a)), True
    if channel_axis is None:
        return t, was_numpy, None
    if not -t.ndim <= channel_axis < t.ndim or t.ndim < 3:
        raise InputError(f"channel_axis={channel_axis} is not an axis of an image of shape {tuple(t.shape)}")
    axis = channel_axis % t.ndim
    if rgb and t.shape[axis] != 3:
        raise InputError(f"channel_axis={channel_axis} has {t.shape[axis]} channels, expected 3 (RGB)")
    return t.movedim(axis, -3), was_numpy, axis


def _finish(t: torch.Tensor, was_numpy: bool, axis: int | None) -> Any:
    """Clip to [0, 1], restore the color axis and the input's array type."""
    t = t.clamp_(0.0, 1.0)
    if axis is not None:
        t = t.movedim(-3, axis).contiguous()
    return t.numpy() if was_numpy else t


def adjust_brightness_(t: torch.Tensor, b: float | torch.Tensor) -> torch.Tensor:
    """In place: ``t + b`` clipped to [0, 1]; ``b`` a number or a tensor broadcasting against ``t``
    (e.g. one per sample). Returns ``t``.

    The in-place kernels here are the one definition of each intensity step: the ``brightness`` …
    ``gaussian_noise`` shifts call them on a copy, :mod:`slicewise.data.augment` on its own batch
    (in place: no allocation per step, which on a CPU costs more than the arithmetic).
    """
    return t.add_(b).clamp_(0.0, 1.0)


def adjust_contrast_(t: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    """In place: scale about the mean of each H×W plane (the last two axes) by ``c``, clipped to [0, 1]."""
    mean = t.mean(dim=(-2, -1), keepdim=True)
    return t.sub_(mean).mul_(c).add_(mean).clamp_(0.0, 1.0)


def adjust_gamma_(t: torch.Tensor, g: float | torch.Tensor) -> torch.Tensor:
    """In place: gamma curve ``t ** g`` on ``t`` clipped to [0, 1] (``g > 0``; the result stays in [0, 1])."""
    return t.clamp_(0.0, 1.0).pow_(g)


def add_noise_(t: torch.Tensor, sigma: float | torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """In place: ``t + sigma·noise`` clipped to [0, 1]; ``noise`` standard normal of ``t``'s shape, drawn by
    the caller (one pass: ``add_`` with ``alpha`` for a number, ``addcmul_`` for a tensor of sigmas)."""
    if isinstance(sigma, torch.Tensor):
        return t.addcmul_(noise, sigma).clamp_(0.0, 1.0)
    return t.add_(noise, alpha=sigma).clamp_(0.0, 1.0)


def gaussian_kernel(sigma: torch.Tensor, radius: int) -> torch.Tensor:
    """Normalized 1-D Gaussian weights (n, 2·radius + 1), float64, one row per ``sigma`` (n,) in px; row i
    is zero beyond ±ceil(3·sigma_i) (so a wide kernel holds every narrower one exactly)."""
    s = sigma.to(torch.float64).clamp_min(1e-12)
    pos = torch.arange(-radius, radius + 1, device=sigma.device, dtype=torch.float64)
    k = torch.exp(-0.5 * (pos[None] / s[:, None]) ** 2) * (pos[None].abs() <= torch.ceil(3 * s)[:, None])
    return k / k.sum(1, keepdim=True)


def blur_planes(
    t: torch.Tensor, sigma: float | torch.Tensor, max_sigma: float | None = None, out: torch.Tensor | None = None
) -> torch.Tensor:
    """Gaussian blur of every H×W plane (the last two axes) of ``t``: kernel ±ceil(3σ) px (at most the plane
    size − 1), reflect borders, separable; into ``out`` (which may be ``t`` itself) or a new tensor. The one
    blur kernel (the ``gaussian_blur`` shift and the augmentation).

    ``sigma``: one number for all of ``t``, or a tensor (n,) of one sigma per sample of ``t`` (n, ...); then
    the kernel spans ±ceil(3·``max_sigma``) (default: the largest sigma, read back to the host — pass the
    range's upper end on a GPU to avoid that). Computed as weighted sums of shifted views (no convolution
    call: several times faster than a grouped ``conv2d`` on a CPU, equal to the 2-D kernel up to float
    round-off, < 1e-6)."""
    h, w = t.shape[-2:]
    limit = min(h, w) - 1
    per_sample = isinstance(sigma, torch.Tensor)
    top = float(sigma.max()) if per_sample and max_sigma is None else float(max_sigma if per_sample else sigma)
    radius = min(limit, int(math.ceil(3 * top)))
    if radius < 1 or t.numel() == 0:
        return t.clone() if out is None else out.copy_(t)
    sig = sigma.to(t.device) if per_sample else torch.tensor([float(sigma)], dtype=torch.float64)
    k = gaussian_kernel(sig, radius).to(t.dtype)
    lead = t.shape[:-2]
    planes = F.pad(t.reshape(-1, h, w)[None], (radius, radius, radius, radius), mode="reflect")[0]
    planes = planes.reshape(*lead, h + 2 * radius, w + 2 * radius)
    if per_sample:
        kw = k.reshape(k.shape[0], *([1] * (t.ndim - 1)), 2 * radius + 1)
        weights = [kw[..., j] for j in range(2 * radius + 1)]
    else:
        weights = [float(v) for v in k[0]]
    rows = torch.zeros((*lead, h, w + 2 * radius), dtype=t.dtype, device=t.device)
    for j, wj in enumerate(weights):
        _axpy(rows, planes[..., j : j + h, :], wj)
    out = torch.zeros_like(t) if out is None else out.zero_()
    for j, wj in enumerate(weights):
        _axpy(out, rows[..., :, j : j + w], wj)
    return out


def _axpy(acc: torch.Tensor, view: torch.Tensor, weight: float | torch.Tensor) -> None:
    if isinstance(weight, torch.Tensor):
        acc.addcmul_(view, weight)
    else:
        acc.add_(view, alpha=weight)


def brightness(x: Any, s: float, seed: int = 0, channel_axis: int | None = None) -> Any:
    """Add ``s`` to every pixel, clipped to [0, 1]; identity at 0."""
    if s == 0:
        return x
    t, was_numpy, axis = _prepare(x, channel_axis)
    return _finish(adjust_brightness_(t.clone(), s), was_numpy, axis)


def contrast(x: Any, s: float, seed: int = 0, channel_axis: int | None = None) -> Any:
    """Scale about the mean of each H×W plane by factor ``s`` (``s < 1`` lowers contrast), clipped; identity at 1."""
    if s == 1:
        return x
    if s < 0:
        raise InputError(f"contrast factor {s} must be >= 0")
    t, was_numpy, axis = _prepare(x, channel_axis)
    return _finish(adjust_contrast_(t.clone(), s), was_numpy, axis)


def gamma(x: Any, s: float, seed: int = 0, channel_axis: int | None = None) -> Any:
    """Gamma curve ``x ** s`` (``s > 1`` darkens) on the input clipped to [0, 1]; identity at 1."""
    if s == 1:
        return x
    if s <= 0:
        raise InputError(f"gamma exponent {s} must be > 0")
    t, was_numpy, axis = _prepare(x, channel_axis)
    return _finish(adjust_gamma_(t.clone(), s), was_numpy, axis)


def gaussian_noise(x: Any, s: float, seed: int = 0, channel_axis: int | None = None) -> Any:
    """Add Gaussian noise of standard deviation ``s`` (drawn on the CPU from ``seed``), clipped; identity at 0."""
    if s == 0:
        return x
    if s < 0:
        raise InputError(f"noise sigma {s} must be >= 0")
    t, was_numpy, axis = _prepare(x, channel_axis)
    gen = torch.Generator().manual_seed(int(seed))
    noise = torch.randn(t.shape, generator=gen, dtype=t.dtype).to(t.device)
    return _finish(add_noise_(t.clone(), s, noise), was_numpy, axis)


def gaussian_blur(x: Any, s: float, seed: int = 0, channel_axis: int | None = None) -> Any:
    """Blur each H×W plane with a Gaussian of sigma ``s`` pixels (kernel ±3σ, reflect borders); identity at 0."""
    if s == 0:
        return x
    if s < 0:
        raise InputError(f"blur sigma {s} must be >= 0")
    t, was_numpy, axis = _prepare(x, channel_axis)
    return _finish(blur_planes(t, float(s)), was_numpy, axis)


def saturation(x: Any, s: float, seed: int = 0, channel_axis: int | None = -3) -> Any:
    """Scale color saturation by ``s`` (0 gives gray, >1 more saturated; torchvision
    ``adjust_saturation``), clipped; RGB only; identity at 1."""
    if s == 1:
        return x
    if s < 0:
        raise InputError(f"saturation factor {s} must be >= 0")
    if channel_axis is None:
        raise InputError("saturation needs RGB input: pass channel_axis (e.g. -3 for (..., 3, H, W))")
    t, was_numpy, axis = _prepare(x, channel_axis, rgb=True)
    return _finish(TF.adjust_saturation(t, float(s)), was_numpy, axis)


def hue(x: Any, s: float, seed: int = 0, channel_axis: int | None = -3) -> Any:
    """Rotate hue by ``s`` turns, ``s`` in [-0.5, 0.5] (torchvision ``adjust_hue``); RGB only; identity at 0."""
    if s == 0:
        return x
    if not -0.5 <= s <= 0.5:
        raise InputError(f"hue shift {s} must be in [-0.5, 0.5] (turns of the color wheel)")
    if channel_axis is None:
        raise InputError("hue needs RGB input: pass channel_axis (e.g. -3 for (..., 3, H, W))")
    t, was_numpy, axis = _prepare(x, channel_axis, rgb=True)
    return _finish(TF.adjust_hue(t.clamp(0.0, 1.0), float(s)), was_numpy, axis)


SHIFTS: dict[str, tuple[ShiftFn, float]] = {
    "brightness": (brightness, 0.0),
    "contrast": (contrast, 1.0),
    "gamma": (gamma, 1.0),
    "gaussian_noise": (gaussian_noise, 0.0),
    "gaussian_blur": (gaussian_blur, 0.0),
    "saturation": (saturation, 1.0),
    "hue": (hue, 0.0),
}
RGB_SHIFTS: tuple[str, ...] = ("saturation", "hue")


def _lookup(name: str) -> tuple[ShiftFn, float]:
    if name not in SHIFTS:
        raise InputError(f"unknown shift {name!r}: use one of {', '.join(SHIFTS)}")
    return SHIFTS[name]


def apply_shift(x: Any, name: str, strength: float, seed: int = 0, channel_axis: int | None = None) -> Any:
    """Apply the shift ``name`` at ``strength`` (see the module table); ``channel_axis`` names the
    RGB axis (required for saturation and hue, optional otherwise)."""
    fn, _ = _lookup(name)
    if name in RGB_SHIFTS and channel_axis is None:
        raise InputError(f"shift {name!r} needs RGB input: pass channel_axis (e.g. -3 for (..., 3, H, W))")
    return fn(x, float(strength), seed=seed, channel_axis=channel_axis)


DEFINITIONS: dict[str, str] = {
    "brightness": "{s:+g} added to every intensity",
    "contrast": "intensities scaled by {s:g} about the mean of each slice of the tile",
    "gamma": "every intensity x replaced by x^{s:g}",
    "gaussian_noise": "Gaussian noise of standard deviation {s:g} added (seeded)",
    "gaussian_blur": "in-plane Gaussian blur with sigma {s:g} px",
    "saturation": "color saturation scaled by {s:g} (blend with the luma image)",
    "hue": "hue rotated by {s:g} of a full turn",
}
"""One sentence per shift, the module table in words (``{s}``: the strength), for reports and legends."""


def describe_shift(name: str, strength: float) -> str:
    """``describe_shift("contrast", 0.5)`` → ``"contrast=0.5: intensities scaled by 0.5 about the mean of each
    slice of the tile (intensities in [0, 1], result clipped to [0, 1])"``."""
    _lookup(name)
    return (
        f"{name}={strength:g}: {DEFINITIONS[name].format(s=float(strength))} "
        f"(intensities in [0, 1], result clipped to [0, 1])"
    )


def parse_shift(text: str) -> tuple[str, float]:
    """``"contrast=0.5"`` → ``("contrast", 0.5)``; one-line :class:`InputError` otherwise."""
    name, sep, value = str(text).partition("=")
    name = name.strip()
    _lookup(name)
    if not sep:
        raise InputError(f"shift {text!r} needs a strength: write {name}=VALUE (identity {SHIFTS[name][1]:g})")
    try:
        strength = float(value)
    except ValueError:
        raise InputError(f"shift strength {value.strip()!r} in {text!r} is not a number") from None
    if not math.isfinite(strength):
        raise InputError(f"shift strength in {text!r} must be finite")
    return name, strength
