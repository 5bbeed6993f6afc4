"""How probabilities become instances: :class:`SegmentOptions`, checked when made, one line per problem.

Modes (``fg = P_fg > foreground_threshold`` is the mask in every mode):

- ``cc``: connected components of ``fg`` (``connectivity`` 1 = faces, as ``scipy.ndimage.label``'s
  default; 2 adds edges, 3 corners).
- ``watershed``: seeded watershed on the boundary channel (``use="boundary"``) or on a distance map
  (``use="distance"``), see :mod:`slicewise.segment.watershed`. A foreground component without any seed
  keeps its own id rather than being dropped.

``per_slice=True`` labels each slice in 2-D (ids unique across slices); otherwise 3-D. Objects smaller
than ``min_size`` voxels (pixels per slice object when ``per_slice``) are removed.

An option set (to other than its default) where the mode ignores it is refused (``mode="cc"`` with a
``boundary_threshold``, ``use="distance"`` with a ``boundary_channel``, ...): a setting that would silently
do nothing. Messages name the command-line flag (``--min-size``), which is also the keyword's name.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar, Literal, get_args

from pydantic import ValidationError, field_validator, model_validator

from slicewise.utils.validation import SettingsModel, check_choice, validation_line

Mode = Literal["cc", "watershed"]
Use = Literal["boundary", "distance"]
MODES: tuple[str, ...] = get_args(Mode)
USES: tuple[str, ...] = get_args(Use)
#: block shape (z, y, x) of ``segment_to`` when none is given: volumes up to this size are one block.
DEFAULT_BLOCK: tuple[int, int, int] = (64, 1024, 1024)
#: watershed context (z, y, x voxels) read around each block when none is given.
DEFAULT_HALO: tuple[int, int, int] = (8, 64, 64)


def _watershed(o: SegmentOptions) -> bool:
    return o.mode == "watershed"


def _boundary(o: SegmentOptions) -> bool:
    return o.mode == "watershed" and o.use == "boundary"


def _distance(o: SegmentOptions) -> bool:
    return o.mode == "watershed" and o.use == "distance"


#: options that only one mode / watershed source reads: (option, applies when, what to add)
_ONLY_FOR: tuple[tuple[str, Callable[[SegmentOptions], bool], str], ...] = (
    ("use", _watershed, "--mode watershed"),
    ("boundary_channel", _boundary, "--mode watershed --use boundary"),
    ("boundary_threshold", _boundary, "--mode watershed --use boundary"),
    ("seed_threshold", _watershed, "--mode watershed"),
    ("distance_channel", _distance, "--mode watershed --use distance"),
    ("min_distance", _distance, "--mode watershed --use distance"),
)


class SegmentOptions(SettingsModel):
    """How probabilities become instances (see the module docstring); an unknown option, a bad value or an
    option the mode ignores is refused in one :class:`~slicewise.errors.InputError` line when it is made."""

    SOURCE: ClassVar[str] = "segment options"

    @classmethod
    def one_line(cls, err: ValidationError) -> str:
        """A check's own message as it is (it names the command-line flags), else :func:`validation_line`."""
        e = err.errors()[0]
        if e["type"] == "value_error":
            return " ".join(str(e["msg"]).removeprefix("Value error, ").split())
        return validation_line(cls, err, cls.SOURCE)

    mode: Mode = "cc"
    use: Use = "boundary"
    foreground_channel: int | str | None = None
    boundary_channel: int | str | None = None
    distance_channel: int | str | None = None
    foreground_threshold: float = 0.5
    boundary_threshold: float = 0.5
    seed_threshold: float | None = None
    min_distance: int = 3
    per_slice: bool = False
    min_size: int = 0
    connectivity: int = 1

    @field_validator("mode", mode="before")
    @classmethod
    def _mode(cls, v: Any) -> Any:
        return check_choice(v, MODES, "mode")

    @field_validator("use", mode="before")
    @classmethod
    def _use(cls, v: Any) -> Any:
        return check_choice(v, USES, "use")

    @field_validator("min_size")
    @classmethod
    def _min_size(cls, v: int) -> int:
        if v < 0:
            raise ValueError(f"--min-size {v} must be >= 0 voxels")
        return v

    @field_validator("min_distance")
    @classmethod
    def _min_distance(cls, v: int) -> int:
        if v < 1:
            raise ValueError(f"--min-distance {v} must be >= 1 pixel")
        return v

    @field_validator("connectivity")
    @classmethod
    def _connectivity(cls, v: int) -> int:
        if v not in (1, 2, 3):
            raise ValueError(f"--connectivity {v} must be 1 (faces), 2 (edges) or 3 (corners)")
        return v

    @field_validator("foreground_threshold", "boundary_threshold")
    @classmethod
    def _probability(cls, v: float, info: Any) -> float:
        if not (math.isfinite(v) and 0.0 <= v <= 1.0):
            raise ValueError(f"--{info.field_name.replace('_', '-')} {v} must be a probability in [0, 1]")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> SegmentOptions:
        """Refuse an option set to other than its default where the mode ignores it; then check the seed
        threshold: a probability with ``use="boundary"``, a distance >= 0 with ``use="distance"``."""
        for name, applies, needs in _ONLY_FOR:
            if getattr(self, name) != type(self).model_fields[name].default and not applies(self):
                flag = "--" + name.replace("_", "-")
                use = f" --use {self.use}" if self.mode == "watershed" else ""
                raise ValueError(
                    f"{flag} {getattr(self, name)} does nothing with --mode {self.mode}{use}: it applies to "
                    f"{needs}; drop it, or add {needs}"
                )
        t = self.seed_threshold
        if t is not None and self.use == "distance" and not (math.isfinite(t) and t >= 0.0):
            raise ValueError(
                f"--seed-threshold {t} must be a distance >= 0 (voxels, or the distance channel's values) "
                f"with --use distance"
            )
        if t is not None and self.use == "boundary" and not (math.isfinite(t) and 0.0 <= t <= 1.0):
            raise ValueError(f"--seed-threshold {t} must be a probability in [0, 1]")
        return self


def segment_options(options: SegmentOptions | None = None, **overrides: Any) -> SegmentOptions:
    """``options`` (default :class:`SegmentOptions`) with ``overrides`` applied, checked as a new
    :class:`SegmentOptions` (a problem is one :class:`~slicewise.errors.InputError` line)."""
    base = options.model_dump(exclude_unset=True) if options is not None else {}
    return SegmentOptions(**{**base, **overrides})
