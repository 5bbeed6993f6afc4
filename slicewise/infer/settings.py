"""Prediction settings (:class:`PredictSettings`), without torch: the CLI checks them before it loads a model.

Every bad value is one :class:`~slicewise.errors.InputError` line in the configs' style
(:func:`slicewise.utils.validation.validation_line`): ``prediction settings: bad value for 'overlap' (1.5): ...``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, field_validator, model_validator

from slicewise.data.io.predictions import PROB_DTYPES
from slicewise.data.roi import parse_roi, parse_sizes
from slicewise.errors import InputError
from slicewise.utils.cluster import parse_address
from slicewise.utils.validation import SettingsModel, check_choice

__all__ = ["NORMALIZE", "OUTPUT_KINDS", "OutputKind", "PredictSettings"]

OutputKind = Literal["probabilities", "labels", "both"]
OUTPUT_KINDS: tuple[str, ...] = ("probabilities", "labels", "both")
NORMALIZE: tuple[str, ...] = ("none", "percentile")


def _sizes(value: Any, n: int, what: str, example: str) -> tuple[int, ...]:
    """:func:`slicewise.data.roi.parse_sizes` inside a validator (its one-line error as the field's problem)."""
    try:
        return parse_sizes(value, n, what, example)
    except InputError as err:
        raise ValueError(str(err)) from None


def _roi(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return parse_roi(value)
        except InputError as err:
            raise ValueError(str(err)) from None
    roi = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    if len(roi) > 3 or not all(isinstance(s, slice) for s in roi):
        raise ValueError(f"roi {value!r} must be up to three slices (z, y, x) or a string 'z0:z1,y0:y1,x0:x1'")
    return roi + (slice(None),) * (3 - len(roi))


def _compile(value: Any) -> bool | str:
    if value in ("true", "false"):
        return value == "true"
    if isinstance(value, bool):
        return value
    if not isinstance(value, str) or value == "":
        raise ValueError(
            f"compile={value!r}: give true/false or a torch.compile backend name (e.g. inductor, aot_eager)"
        )
    import torch._dynamo

    backends = torch._dynamo.list_backends(exclude_tags=())
    if value not in backends:
        raise ValueError(
            f"compile={value!r} is not a torch.compile backend: use true (inductor), false or one of "
            f"{', '.join(b for b in backends if 'TESTING' not in b)}"
        )
    return value


class PredictSettings(SettingsModel):
    """Prediction settings (validated at construction; every bad value is a one-line :class:`InputError`).

    ``tile``: pixels (one size or (h, w)), shrunk on short axes to a multiple of the model's size divisor;
    must be a multiple of it otherwise. ``overlap``: fraction of the tile in [0, 1). ``batch_size``: tiles per
    forward (≥ 1). ``k``: slices per stack (default the model's ``in_slices``); ``dz``: z-step between
    context slices (≥ 1); ``border``: ``reflect`` or ``replicate`` context beyond the volume ends (``dz`` and
    ``border`` default to the model's, :func:`slicewise.models.build.prediction_defaults`: a bioimage.io
    package's, else 1 and ``reflect``). ``tta``:
    average over H/W flips and z-reversal. ``device``: ``None``/``"auto"`` = CUDA when available (bf16
    autocast, channels_last), else CPU. ``output_kind``: what :func:`~slicewise.infer.predict.predict_to` writes.
    ``dtype``: stored probabilities (``float32``, ``float16``, ``uint8``). ``block``: (z, y, x) block shape,
    clipped to the ROI; default ``None`` = 32×1024×1024 for ``predict_to`` (memory bounded by the block) and
    32 whole planes for ``predict`` (the output is in memory anyway, and whole planes recompute no tiles).
    ``roi``: output region (string or slices). ``normalize``: ``None`` / ``"none"`` or ``"percentile"`` (see
    :mod:`slicewise.infer.predict`). ``dask``: ``None``, ``"local:N"`` or ``"tcp://host:port"`` (``predict_to``
    only). ``progress``: show a progress bar. ``compile`` (``False``, ``True`` = inductor, or a
    ``torch.compile`` backend name) and ``cuda_graphs`` (CUDA only; a logged no-op on CPU): static-shape
    speed-ups, see :class:`slicewise.infer.blocks.StaticForward` (not with ``dask``; results equal the eager
    run up to float round-off).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)
    SOURCE: ClassVar[str] = "prediction settings"

    tile: tuple[int, int] = (256, 256)
    overlap: float = 0.25
    batch_size: int = 8
    k: int | None = None
    dz: int | None = None
    border: str | None = None
    tta: bool = False
    device: str | None = None
    output_kind: str = "probabilities"
    dtype: str = "float32"
    block: tuple[int, int, int] | None = None
    roi: Any = None
    normalize: str | None = None
    dask: str | None = None
    progress: bool = True
    compile: bool | str = False
    cuda_graphs: bool = False

    @field_validator("tile", mode="before")
    @classmethod
    def _tile(cls, v: Any) -> tuple[int, ...]:
        return _sizes(v, 2, "tile", "256 or 256,384")

    @field_validator("overlap", mode="before")
    @classmethod
    def _overlap(cls, v: Any) -> float:
        try:
            overlap = float(v)
        except (TypeError, ValueError):
            raise ValueError(f"tile overlap {v!r} is not a number: give a fraction in [0, 1), e.g. 0.25") from None
        if not 0.0 <= overlap < 1.0:
            raise ValueError(f"tile overlap {v} must be in [0, 1) (a fraction of the tile, e.g. 0.25)")
        return overlap

    @field_validator("batch_size", mode="before")
    @classmethod
    def _batch_size(cls, v: Any) -> int:
        return _sizes(v, 1, "batch size", "8")[0]

    @field_validator("k", mode="before")
    @classmethod
    def _k(cls, v: Any) -> int | None:
        if v is None:
            return None
        k = _sizes(v, 1, "k (slices per stack)", "3")[0]
        if k % 2 == 0:
            raise ValueError(
                f"k={k} slices per stack must be odd (1, 3, 5, ...): the centre slice needs equal context on both sides"
            )
        return k

    @field_validator("dz", mode="before")
    @classmethod
    def _dz(cls, v: Any) -> int | None:
        return None if v is None else _sizes(v, 1, "z-step dz", "1")[0]

    @field_validator("border")
    @classmethod
    def _border(cls, v: str | None) -> str | None:
        if v is not None and v not in ("reflect", "replicate"):
            extra = ": 'skip' leaves edge slices without a prediction" if v == "skip" else ""
            raise ValueError(f"border {v!r} is not usable for prediction{extra}; use reflect or replicate")
        return v

    @field_validator("output_kind")
    @classmethod
    def _output_kind(cls, v: str) -> str:
        return check_choice(v, OUTPUT_KINDS, "output kind")

    @field_validator("dtype", mode="before")
    @classmethod
    def _dtype(cls, v: Any) -> str:
        return check_choice(str(v), PROB_DTYPES, "probability dtype")

    @field_validator("block", mode="before")
    @classmethod
    def _block(cls, v: Any) -> tuple[int, ...] | None:
        return None if v is None else _sizes(v, 3, "block shape", "32,1024,1024 (z, y, x)")

    @field_validator("roi", mode="before")
    @classmethod
    def _roi(cls, v: Any) -> Any:
        return _roi(v)

    @field_validator("normalize", mode="before")
    @classmethod
    def _normalize(cls, v: Any) -> str | None:
        norm = None if v in (None, "none", "") else v
        if norm not in (None, "percentile"):
            raise ValueError(f"normalize {v!r} is unknown: use {' or '.join(NORMALIZE)}")
        return norm

    @field_validator("compile", mode="before")
    @classmethod
    def _compile(cls, v: Any) -> bool | str:
        return _compile(v)

    @field_validator("cuda_graphs", mode="before")
    @classmethod
    def _cuda_graphs(cls, v: Any) -> bool:
        if not isinstance(v, bool):
            raise ValueError(f"cuda_graphs={v!r} must be true or false")
        return v

    @field_validator("dask", mode="before")
    @classmethod
    def _dask(cls, v: Any) -> str | None:
        if v is None:
            return None
        try:
            parse_address(str(v))
        except InputError as err:
            raise ValueError(str(err)) from None
        return str(v).strip()

    @model_validator(mode="after")
    def _combinations(self) -> PredictSettings:
        """Settings that would do nothing together are refused, not dropped."""
        if self.output_kind == "labels" and self.dtype != "float32":
            raise ValueError(
                f"--dtype {self.dtype} sets how probabilities are stored, and --labels alone stores none: "
                f"drop --dtype, or add --probabilities to store both"
            )
        if self.dask is not None and (self.compile or self.cuda_graphs):
            raise ValueError("compile / cuda_graphs apply to in-process prediction: drop them or run without --dask")
        return self

    def replace(self, **overrides: Any) -> PredictSettings:
        """A copy with ``overrides`` applied and validated (unknown names are a one-line error)."""
        known = type(self).model_fields
        bad = sorted(set(overrides) - set(known))
        if bad:
            raise InputError(f"unknown prediction setting(s) {', '.join(bad)}: use {', '.join(sorted(known))}")
        return PredictSettings(**{**{name: getattr(self, name) for name in known}, **overrides}) if overrides else self
