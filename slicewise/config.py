"""Validated configuration (pydantic): model, data, training.

Every config class forbids unknown keys. :func:`validate` turns pydantic's report into one
line naming the key and what is allowed. YAML files and ``key=value`` CLI overrides go
through :func:`load_config`.
"""

from __future__ import annotations

import difflib
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from slicewise.errors import ConfigError

ChannelInit = Literal["rgb", "repeat", "uniform", "mirror", "random"]
Head = Literal["boundary", "distance"]


class StrictModel(BaseModel):
    """Base for all configs: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


class ModelConfig(StrictModel):
    """Everything needed to rebuild a segmentation network (saved inside every checkpoint).

    ``skips``: one character per decoder level, top-down (L1 = uppermost, highest resolution,
    first), "1" keeps the skip connection, "0" prunes it; "0111" is the L1-pruned U-Net.
    ``weights``: "imagenet", "random", a registry name (see ``slicewise.models.weights``) or a
    path to a local .pth/.safetensors checkpoint.
    """

    encoder: str = "tf_efficientnet_lite0"
    weights: str = "imagenet"
    in_slices: int = 3
    channel_init: ChannelInit = "uniform"
    skips: str = "1111"
    classes: int = 2
    decoder_channels: tuple[int, ...] = (256, 128, 64, 32, 16)
    decoder_norm: Literal["batch", "group", "instance", "none"] = "batch"
    extra_heads: tuple[Head, ...] = ()
    img_size: int | None = None

    @field_validator("in_slices")
    @classmethod
    def _odd(cls, v: int) -> int:
        if v < 1 or v % 2 == 0:
            raise ValueError("must be a positive odd number (1, 3, 5, ...)")
        return v

    @field_validator("skips")
    @classmethod
    def _skips(cls, v: str) -> str:
        if not v or set(v) - {"0", "1"}:
            raise ValueError("must be a string of 0/1 per decoder level, top-down, e.g. '1111' or '0111'")
        return v

    @field_validator("classes")
    @classmethod
    def _classes(cls, v: int) -> int:
        if v < 1:
            raise ValueError("must be >= 1")
        return v


C = TypeVar("C", bound=BaseModel)


def _allowed(model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """Describe what the field at ``loc`` accepts (keys of the model, or literal values)."""
    fields = model.model_fields
    sub: type[BaseModel] | None = model
    for part in loc[:-1]:
        if sub is None or not isinstance(part, str) or part not in sub.model_fields:
            return ""
        ann = sub.model_fields[part].annotation
        sub = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    if sub is None:
        return ""
    fields = sub.model_fields
    name = loc[-1]
    if name not in fields:
        close = difflib.get_close_matches(str(name), list(fields), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"{hint}; allowed keys: {', '.join(fields)}"
    ann = fields[name].annotation
    lits = [a for a in typing.get_args(ann)] if typing.get_origin(ann) is Literal else []
    if not lits:
        for arg in typing.get_args(ann):
            if typing.get_origin(arg) is Literal:
                lits = list(typing.get_args(arg))
    return f"; allowed values: {', '.join(map(str, lits))}" if lits else ""


def validate(model: type[C], data: dict[str, Any], source: str = "config") -> C:
    """Build ``model`` from ``data``; raise a one-line :class:`ConfigError` on the first problem."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        e = err.errors()[0]
        loc = tuple(e["loc"])
        key = ".".join(map(str, loc)) or "<root>"
        if e["type"] == "extra_forbidden":
            raise ConfigError(f"{source}: unknown key {key!r}{_allowed(model, loc)}") from None
        msg = e["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{source}: bad value for {key!r} ({e.get('input')!r}): {msg}{_allowed(model, loc)}") from None


def parse_overrides(overrides: list[str] | None) -> dict[str, Any]:
    """``["train.lr=1e-3", "model.skips=0111"]`` → nested dict; values parsed as YAML scalars."""
    out: dict[str, Any] = {}
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value (e.g. model.skips=0111)")
        key, value = item.split("=", 1)
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = yaml.safe_load(value) if value != "" else None
    return out


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge ``update`` into a copy of ``base``."""
    out = dict(base)
    for k, v in update.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_config(model: type[C], path: str | Path | None = None, overrides: list[str] | None = None) -> C:
    """Read a YAML file (optional), apply ``key=value`` overrides, validate into ``model``."""
    data: dict[str, Any] = {}
    source = "config"
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist: check the path")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{p} is not valid YAML ({str(err).splitlines()[0]}): fix the syntax") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{p} must hold a mapping of keys to values at the top level")
        source = p.name
    return validate(model, deep_merge(data, parse_overrides(overrides)), source)


def save_config(config: BaseModel, path: str | Path) -> Path:
    """Write the resolved config as YAML (atomically)."""
    from slicewise.utils.atomic import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    return Path(path)
