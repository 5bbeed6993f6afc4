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
import torchvision.transforms.v2.functional as TF

from slicewise.errors import InputError

ShiftFn = Callable[..., Any]


def _prepare(x: Any, channel_axis: int | None, rgb: bool = False) -> tuple[torch.Tensor, bool, int | None]:
    """As a torch tensor with the colour axis (if any) moved to -3, so that H, W are the last two
    axes; returns ``(tensor, was_numpy, axis to restore)``."""
    if isinstance(x, torch.Tensor):
        t, was_numpy = x, False
    else:
        a = np.asarray(x)
        if not np.issubdtype(a.dtype, np.floating):
            raise InputError(f"domain shifts take float images in [0, 1], got dtype {a.dtype}: convert with to_unit_float first")
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
    """Clip to [0, 1], restore the colour axis and the input's array type."""
    t = t.clamp_(0.0, 1.0)
    if axis is not None:
        t = t.movedim(-3, axis).contiguous()
    return t.numpy() if was_numpy else t


def adjust_brightness(t: torch.Tensor, b: float | torch.Tensor) -> torch.Tensor:
    """``t + b`` clipped to [0, 1]; ``b`` a number or a tensor broadcasting against ``t`` (e.g. one per sample).

    The one brightness kernel: :func:`brightness` and :func:`slicewise.data.augment.augment` use it.
    """
    return (t + b).clamp(0.0, 1.0)


def adjust_contrast(t: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    """Scale about the mean of each H×W plane (the last two axes) by ``c``, clipped to [0, 1]."""
    mean = t.mean(dim=(-2, -1), keepdim=True)
    return ((t - mean) * c + mean).clamp(0.0, 1.0)


def adjust_gamma(t: torch.Tensor, g: float | torch.Tensor) -> torch.Tensor:
    """Gamma curve ``t ** g`` on ``t`` clipped to [0, 1] (``g > 0``; the result stays in [0, 1])."""
    return t.clamp(0.0, 1.0).pow(g)


def add_noise(t: torch.Tensor, sigma: float | torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """``t + sigma·noise`` clipped to [0, 1]; ``noise`` standard normal of ``t``'s shape (the caller draws it)."""
    return (t + sigma * noise).clamp(0.0, 1.0)


def brightness(x: Any, s: float, seed: int = 0, channel_axis: int | None = None) -> Any:
    """Add ``s`` to every pixel, clipped to [0, 1]; identity at 0."""
    if s == 0:
        return x
    t, was_numpy, axis = _prepare(x, channel_axis)
    return _finish(adjust_brightness(t, s), was_numpy, axis)


def contrast(x: Any, s: float, seed: int = 0, channel_axis: int | None = None) -> Any:
    """Scale about the mean of each H×W plane by factor ``s`` (``s < 1`` lowers contrast), clipped; identity at 1."""
    if s == 1:
        return x
    if s < 0:
        raise InputError(f"contrast factor {s} must be >= 0")
    t, was_numpy, axis = _prepare(x, channel_axis)
    return _finish(adjust_contrast(t, s), was_numpy, axis)


def gamma(x: Any, s: float, seed: int = 0, channel_axis: int | None = None) -> Any:
    """Gamma curve ``x ** s`` (``s > 1`` darkens) on the input clipped to [0, 1]; identity at 1."""
    if s == 1:
        return x
    if s <= 0:
        raise InputError(f"gamma exponent {s} must be > 0")
    t, was_numpy, axis = _prepare(x, channel_axis)
    return _finish(adjust_gamma(t, s), was_numpy, axis)


def gaussian_noise(x: Any, s: float, seed: int = 0, channel_axis: int | None = None) -> Any:
    """Add Gaussian noise of standard deviation ``s`` (drawn on the CPU from ``seed``), clipped; identity at 0."""
    if s == 0:
        return x
    if s < 0:
        raise InputError(f"noise sigma {s} must be >= 0")
    t, was_numpy, axis = _prepare(x, channel_axis)
    gen = torch.Generator().manual_seed(int(seed))
    noise = torch.randn(t.shape, generator=gen, dtype=t.dtype).to(t.device)
    return _finish(add_noise(t, s, noise), was_numpy, axis)


def gaussian_blur(x: Any, s: float, seed: int = 0, channel_axis: int | None = None) -> Any:
    """Blur each H×W plane with a Gaussian of sigma ``s`` pixels (kernel ±3σ, reflect borders); identity at 0."""
    if s == 0:
        return x
    if s < 0:
        raise InputError(f"blur sigma {s} must be >= 0")
    t, was_numpy, axis = _prepare(x, channel_axis)
    h, w = t.shape[-2:]
    radius = min(int(math.ceil(3 * s)), h - 1, w - 1)
    if radius < 1:
        return _finish(t.clone(), was_numpy, axis)
    planes = t.reshape(-1, 1, h, w)
    out = TF.gaussian_blur(planes, [2 * radius + 1, 2 * radius + 1], [float(s), float(s)])
    return _finish(out.reshape(t.shape), was_numpy, axis)


def saturation(x: Any, s: float, seed: int = 0, channel_axis: int | None = -3) -> Any:
    """Scale colour saturation by ``s`` (0 gives gray, >1 more saturated; torchvision
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
        raise InputError(f"hue shift {s} must be in [-0.5, 0.5] (turns of the colour wheel)")
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
