"""MODEL arguments: a saved model file, a bioimage.io package, or an encoder spec (torch-free, so front ends
check them before torch is imported).

An encoder spec is a timm encoder name, optionally with ModelConfig fields that override the caller's defaults,
e.g. ``tf_efficientnet_lite0:skips=0111,channel_init=mirror`` (:func:`spec_fields`);
:func:`slicewise.models.build.open_model` turns either kind into a network.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from slicewise.errors import ConfigError
from slicewise.models.package import is_package
from slicewise.models.tiny_sam import TINY_SAM, register_tiny_sam
from slicewise.utils.inputs import check_model_file

#: suffixes of model files: a MODEL argument ending in one is a path, not an encoder name
MODEL_SUFFIXES = (".pt", ".pth", ".ckpt", ".zip", ".yaml", ".yml", ".safetensors")


def spec_fields(spec: str) -> tuple[str, dict[str, str]]:
    """``"enc:key=value,key=value"`` → (encoder, {key: value}); values stay strings for ModelConfig to validate."""
    name, _, rest = spec.partition(":")
    fields = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        if "=" not in part:
            raise ConfigError(f"model spec {spec!r}: {part!r} must look like key=value (e.g. {name}:skips=0111)")
        key, value = part.split("=", 1)
        fields[key.strip()] = value.strip()
    return name, fields


def check_encoder_name(name: str) -> None:
    """Raise a one-line ConfigError if timm has no model called ``name`` (imports timm).

    The small SAM test ViT (:data:`slicewise.models.tiny_sam.TINY_SAM`) is registered here on first use.
    """
    import timm

    if name == TINY_SAM:
        register_tiny_sam()
    if not timm.is_model(name):
        if "/" in name or "\\" in name or name.lower().endswith((".pt", ".pth", ".ckpt", ".zip", ".safetensors")):
            raise ConfigError(
                f"unknown encoder {name!r}: it looks like a file path, but an encoder name is expected "
                f"here (a timm model name, e.g. tf_efficientnet_lite0); pass a model file where MODEL is asked for"
            )
        close = difflib.get_close_matches(name, timm.list_models(), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ConfigError(f"unknown encoder {name!r}{hint}: use a timm model name, see timm.list_models()")


def is_model_path(spec: str) -> bool:
    """Whether a MODEL argument means a file rather than an encoder spec: an existing file, a path (``/``
    before any ``:``), a name ending in a model-file suffix (``.pt``, ``.zip``, ...) without ``key=value``
    fields, or an existing folder that is not also an encoder name (only then is timm imported)."""
    p, name = Path(spec), spec.partition(":")[0]
    if p.is_file() or "/" in name or "\\" in name or ("=" not in spec and p.suffix.lower() in MODEL_SUFFIXES):
        return True
    if not p.is_dir():
        return False
    try:
        check_encoder_name(name)
    except ConfigError:
        return True
    return False


def check_model_arg(spec: str | Path) -> None:
    """A MODEL argument that names a file (:func:`is_model_path`) must be a model file or a bioimage.io package:
    a missing path or a folder is one :class:`InputError` line, found without importing torch."""
    if is_model_path(str(spec)) and not is_package(spec):
        check_model_file(spec)
