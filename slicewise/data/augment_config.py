"""Options of the train-time augmentation (:class:`AugmentConfig`), without torch.

The augmentation itself is :mod:`slicewise.data.augment` (torch); the options live here so that a
config (``TrainConfig.augment``) is validated without importing torch: a mistyped key is answered in
about a second.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, field_validator

from slicewise.errors import ConfigError
from slicewise.utils.validation import SettingsModel

__all__ = ["AugmentConfig"]


def _probability(v: float) -> float:
    if not 0.0 <= v <= 1.0:  # also refuses NaN
        raise ValueError("must be a probability in [0, 1]")
    return v


def _ordered(v: tuple[float, float]) -> tuple[float, float]:
    if not v[0] <= v[1]:
        raise ValueError("must be (low, high) with low <= high")
    return v


Probability = Annotated[float, AfterValidator(_probability)]
Range = Annotated[tuple[float, float], AfterValidator(_ordered)]


class AugmentConfig(SettingsModel):
    """Probabilities (0–1) and uniform ranges of the train-time augmentations.

    ``brightness_range`` additive offset; ``contrast_range`` and ``gamma_range`` factors/exponents;
    ``noise_range`` noise sigma; ``blur_range`` blur sigma in pixels. Unknown keys and bad values are
    one-line :class:`~slicewise.errors.ConfigError` s (inside a config: its ``augment.<key>`` error).
    """

    SOURCE: ClassVar[str] = "augment"
    ERROR: ClassVar[type[Exception]] = ConfigError

    flip: Probability = 0.5
    rot90: Probability = 0.5
    z_reverse: Probability = 0.5
    brightness: Probability = 0.5
    brightness_range: Range = (-0.1, 0.1)
    contrast: Probability = 0.5
    contrast_range: Range = (0.75, 1.33)
    gamma: Probability = 0.3
    gamma_range: Range = (0.75, 1.33)
    noise: Probability = 0.3
    noise_range: Range = (0.0, 0.05)
    blur: Probability = 0.2
    blur_range: Range = (0.5, 1.5)

    @field_validator("gamma_range")
    @classmethod
    def _positive(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not v[0] > 0:
            raise ValueError("gamma exponents must be > 0")
        return v

    @field_validator("contrast_range", "noise_range", "blur_range")
    @classmethod
    def _non_negative(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not v[0] >= 0:
            raise ValueError("contrast factors, noise and blur sigmas must be >= 0")
        return v

    @classmethod
    def from_dict(cls, values: dict[str, Any] | AugmentConfig | None) -> AugmentConfig:
        """Build from a plain dict (e.g. a YAML block; an AugmentConfig is returned as is); unknown keys and bad
        values raise a one-line ConfigError."""
        return values if isinstance(values, AugmentConfig) else cls(**(values or {}))

    @classmethod
    def off(cls) -> AugmentConfig:
        """No augmentation at all (every probability 0)."""
        return cls(**{name: 0.0 for name in cls.model_fields if not name.endswith("_range")})
