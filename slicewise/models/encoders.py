"""Encoders from timm, described by their own metadata.

Every encoder is an ``nn.Module`` whose ``forward(x)`` returns a list of feature maps in
ascending stride, with attributes read from timm metadata (never per-model special cases):

- ``channels``: channels per feature map; ``reductions``: stride of each map w.r.t. the input;
- ``mean`` / ``std``: the pretraining normalization (``pretrained_cfg``, RGB order);
- ``first_conv``: dotted path (within the encoder) of the first layer taking the image, found
  from ``pretrained_cfg['first_conv']`` (``conv_stem``, ``conv1``, ``stem.0``, ``patch_embed.proj``);
- ``kind``: ``"cnn"`` (timm ``features_only``, :class:`CNNEncoder` here) or ``"vit"`` (intermediate blocks +
  deconvolution ladder, :mod:`slicewise.models.sam`); :func:`slicewise.models.build.build_encoder` picks one.
  A model is a ViT when its first layer is a patch embedding (``first_conv`` starts with ``patch_embed``).

Encoders are always built with 3 input channels so pretrained RGB weights load as published;
the channel strategy (:mod:`slicewise.models.channels`) adapts the first layer afterwards.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
from collections.abc import Iterator
from typing import Any

import timm
import torch
from torch import nn

from slicewise.errors import WeightsError
from slicewise.models.spec import check_encoder_name


def encoder_kind(name: str) -> str:
    """``"vit"`` when the model's first layer is a patch embedding, else ``"cnn"``."""
    return "vit" if pretrained_cfg(name).get("first_conv", "").startswith("patch_embed") else "cnn"


def pretrained_cfg(name: str) -> dict[str, Any]:
    """timm's default pretrained config for ``name`` (mean, std, first_conv, input_size, ...)."""
    check_encoder_name(name)
    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None:
        return {"first_conv": "", "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
    return cfg.to_dict()


def find_module_path(root: nn.Module, dotted: str) -> str:
    """Name of the sub-module of ``root`` matching timm's ``dotted`` path.

    timm's feature wrappers flatten ``nn.Sequential`` children (``stem.0`` becomes ``stem_0``),
    so names are compared with ``_`` and ``.`` treated alike.
    """
    key = re.sub(r"[._]", ".", dotted)
    for name, _ in root.named_modules():
        if name == dotted or re.sub(r"[._]", ".", name) == key:
            return name
    raise WeightsError(
        f"first layer {dotted!r} (timm pretrained_cfg['first_conv']) not found in the encoder: this model cannot be "
        "adapted to other "
        "input channels"
    )


@contextlib.contextmanager
def _capture_timm_load() -> Iterator[list[str]]:
    """Collect timm's 'Missing keys' reports while pretrained weights load.

    The one place slicewise touches another library's logger: a handler is attached to
    ``timm.models._builder`` (and its level lowered to INFO) only for the duration of one load and
    both are restored afterwards, because timm reports key mismatches only through that logger.
    """
    messages: list[str] = []

    class _Grab(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    logger = logging.getLogger("timm.models._builder")
    handler, level = _Grab(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def create_timm(name: str, overlay: dict[str, Any] | None, **kwargs: Any) -> nn.Module:
    """``timm.create_model`` with weights from ``overlay`` (None = random init).

    ``overlay`` is a ``pretrained_cfg_overlay`` (``{}`` = timm's default tag, ``{"file": path}``
    or ``{"state_dict": sd}``); timm's own key filtering applies. Missing encoder keys or shape
    mismatches raise a one-line :class:`WeightsError`.
    """
    check_encoder_name(name)
    pretrained = overlay is not None
    if pretrained and overlay:
        kwargs["pretrained_cfg_overlay"] = overlay
    try:
        with _capture_timm_load() as log:
            model = timm.create_model(name, pretrained=pretrained, **kwargs)
    except RuntimeError as err:
        first = str(err).strip().splitlines()
        detail = next((ln.strip() for ln in first if "size mismatch" in ln), first[0] if first else "")
        raise WeightsError(
            f"weights do not fit {name}: {detail[:300]}; use weights=random or a checkpoint of this architecture"
        ) from None
    except (OSError, ValueError) as err:
        raise WeightsError(
            f"cannot load weights for {name} ({str(err).splitlines()[0][:200]}): use weights=random or a local "
            "checkpoint path"
        ) from None
    if not pretrained:
        return model
    heads = _classifier_prefixes(name)
    missing = [k for k in _reported_keys(log, "Missing keys (") if not k.startswith(heads)]
    if missing:
        raise WeightsError(
            f"weights for {name} lack {len(missing)} encoder key(s) ({', '.join(missing[:4])}, ...): the checkpoint "
            "is for another "
            "architecture; use weights=random or a matching checkpoint"
        )
    unexpected = [k for k in _reported_keys(log, "Unexpected keys (") if not k.startswith(heads)]
    if unexpected:
        build = {k: v for k, v in kwargs.items() if k not in ("features_only", "out_indices", "pretrained_cfg_overlay")}
        known = _architecture_keys(name, tuple(sorted(build.items())))
        foreign = [k for k in unexpected if k not in known]
        if foreign:
            raise WeightsError(
                f"checkpoint has {len(foreign)} key(s) that {name} lacks ({', '.join(foreign[:4])}, ...): it is for "
                "another "
                "architecture (e.g. a deeper variant); use a matching checkpoint or weights=random"
            )
    return model


@functools.lru_cache(maxsize=32)
def _architecture_keys(name: str, build: tuple[tuple[str, Any], ...]) -> frozenset[str]:
    """State-dict keys of the full timm model (built on the meta device: no memory, no init)."""
    with torch.device("meta"):
        return frozenset(timm.create_model(name, pretrained=False, **dict(build)).state_dict())


def _classifier_prefixes(name: str) -> tuple[str, ...]:
    """Key prefixes of the classifier, which encoders drop on purpose (``fc.``, ``head.fc.``)."""
    classifier = pretrained_cfg(name).get("classifier") or ()
    return tuple(f"{c}." for c in ((classifier,) if isinstance(classifier, str) else classifier))


def _reported_keys(log: list[str], opening: str) -> list[str]:
    """Key names from timm's 'Missing keys (...)' / 'Unexpected keys (...)' log lines."""
    keys: list[str] = []
    for line in log:
        if line.startswith(opening):
            keys += [k.strip() for k in line[len(opening) :].split(")", 1)[0].split(",")]
    return [k for k in keys if k]


class CNNEncoder(nn.Module):
    """A timm CNN with ``features_only=True``: all feature levels, ascending stride."""

    kind = "cnn"

    def __init__(self, name: str, overlay: dict[str, Any] | None = None, in_chans: int = 3, **kwargs: Any) -> None:
        super().__init__()
        self.name = name
        self.body = create_timm(name, overlay, features_only=True, in_chans=in_chans, **kwargs)
        info = self.body.feature_info
        self.channels: tuple[int, ...] = tuple(info.channels())
        self.reductions: tuple[int, ...] = tuple(info.reduction())
        cfg = self.body.pretrained_cfg
        self.mean: tuple[float, ...] = tuple(cfg["mean"])
        self.std: tuple[float, ...] = tuple(cfg["std"])
        self.first_conv = "body." + find_module_path(self.body, cfg["first_conv"])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, C, H, W) normalized input → feature maps at ``self.reductions``."""
        return list(self.body(x))
