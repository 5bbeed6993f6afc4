"""Options of the train-time augmentation (:class:`AugmentConfig`), without torch.

The augmentation itself is :mod:`slicewise.data.augment` (torch); the options live here so that a
config (``TrainConfig.augment``) is validated without importing torch: a mistyped key is answered in
about a second.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from slicewise.errors import ConfigError

__all__ = ["AugmentConfig"]


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
