"""First-layer channel strategies: how a 3-channel pretrained first layer takes k slices.

Pretrained first-layer kernel W (O × 3 × h × w, RGB order; the patch-embedding projection of a
ViT), k input slices (k odd), ``colors`` color channels per slice (1 grayscale, 3 RGB). Input
channel ``c·colors + j`` is color ``j`` of slice ``c`` (slice-major, as ``stack_slices`` builds).

Grayscale slices (colors = 1), as in docs/design-notes.md ("First-layer channel strategies"):

======== ======================================= ==========================================
name     weights                                 normalization (mean / std per input channel)
======== ======================================= ==========================================
rgb      k = 3 only; W unchanged                 the encoder's per-channel RGB mean/std
repeat   W'[:, c] = W[:, c mod 3] · 3/k          one value: mean of the encoder's mean/std
         (timm ``adapt_input_conv``; k = 1
         sums the colors, as uniform)
uniform  W'[:, c] = (1/k) Σ_j W[:, j]            one value (as repeat)
mirror   uniform, trained as                     one value (as repeat)
         W'[:, c] = (V[:, c] + V[:, k−1−c]) / 2
random   re-initialized as the architecture      one value (as repeat)
         initializes it (the first layer of a
         fresh timm model built for k inputs)
======== ======================================= ==========================================

Color slices (colors = 3, e.g. H&E; k = 1 is a plain 2-D RGB image): color j of every slice
uses the pretrained color kernel W[:, j]. ``rgb`` needs k·colors = 3 (k = 1: the plain
pretrained network); ``repeat`` and ``uniform`` both give W'[:, c·3 + j] = W[:, j] / k (a stack
of k identical RGB images gives exactly the pretrained response); ``mirror`` is that,
kept symmetric over slice reversal (colors are not mixed); ``random`` re-initializes.
Normalization is then the encoder's per-color mean/std, repeated for every slice.

The first-layer bias (ViT patch embeddings have one) is kept, except by ``random``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from timm.models import adapt_input_conv
from torch import nn
from torch.nn.utils import parametrize

from slicewise.config import FIRST_LAYER_STRATEGIES, FirstLayerStrategy
from slicewise.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class ChannelStrategy(FirstLayerStrategy):
    """One row of the strategy table (:data:`slicewise.config.FIRST_LAYER_STRATEGIES`: name, description,
    normalization and re-initialization flags) with its weight rule ``weight(W, k, colors)``."""

    weight: Callable[[torch.Tensor, int, int], torch.Tensor]


def _unchanged(w: torch.Tensor, k: int, colors: int) -> torch.Tensor:
    return w.clone()


def _repeat(w: torch.Tensor, k: int, colors: int) -> torch.Tensor:
    if colors == 3:
        return _uniform(w, k, colors)
    return adapt_input_conv(k, w.clone())


def _uniform(w: torch.Tensor, k: int, colors: int) -> torch.Tensor:
    base = w if colors == 3 else w.sum(dim=1, keepdim=True)
    return base.repeat(1, k, 1, 1) / k


_WEIGHT_RULES: dict[str, Callable[[torch.Tensor, int, int], torch.Tensor]] = {
    "rgb": _unchanged,
    "repeat": _repeat,
    "uniform": _uniform,
    "mirror": _uniform,  # trained through MirrorSymmetric
    "random": _unchanged,  # replaced by the fresh layer (``reinit``)
}

#: the strategy table with the weight rules (names, descriptions and flags from the config's table).
STRATEGIES: dict[str, ChannelStrategy] = {
    name: ChannelStrategy(**vars(row), weight=_WEIGHT_RULES[name]) for name, row in FIRST_LAYER_STRATEGIES.items()
}


def get_strategy(name: str) -> ChannelStrategy:
    """The strategy called ``name``; one-line ConfigError naming the choices otherwise."""
    if name not in STRATEGIES:
        raise ConfigError(f"unknown channel_init {name!r}: use one of {', '.join(STRATEGIES)}")
    return STRATEGIES[name]


class MirrorSymmetric(nn.Module):
    """Parametrization W = (V + V reversed over slices) / 2 for a (O, k·colors, h, w) kernel."""

    def __init__(self, k: int, colors: int) -> None:
        super().__init__()
        self.k, self.colors = k, colors

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        o, _, h, w = v.shape
        split = v.reshape(o, self.k, self.colors, h, w)
        return ((split + split.flip(1)) / 2).reshape(o, self.k * self.colors, h, w)


def check_strategy(name: str, k: int, colors: int = 1) -> ChannelStrategy:
    """Validate ``name`` for k slices of ``colors`` channels; return the strategy."""
    strategy = get_strategy(name)
    if colors not in (1, 3):
        raise ConfigError(f"colors={colors} is not supported: slices are grayscale (1) or RGB (3)")
    if strategy.needs_three and k * colors != 3:
        others = [s.name for s in STRATEGIES.values() if not s.needs_three]
        raise ConfigError(
            f"channel_init {name!r} needs exactly 3 input channels (k=3 grayscale or k=1 RGB), got k={k} × {colors} "
            f"color(s): use {', '.join(others[:-1])} or {others[-1]}"
        )
    return strategy


def adapt_weight(w: torch.Tensor, name: str, k: int, colors: int = 1) -> torch.Tensor:
    """Apply strategy ``name``'s weight rule to a pretrained (O, 3, h, w) kernel."""
    strategy = check_strategy(name, k, colors)
    return strategy.weight(w.detach(), k, colors)


def normalization(
    name: str, mean: tuple[float, ...], std: tuple[float, ...], k: int, colors: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-input-channel (mean, std), each of length k·colors, as strategy ``name`` defines."""
    strategy = check_strategy(name, k, colors)
    m, s = torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32)
    if strategy.per_channel_norm:
        return m, s
    if colors == 1:
        m, s = m.mean().reshape(1), s.mean().reshape(1)
    return m.repeat(k), s.repeat(k)


def apply_strategy(
    module: nn.Module, path: str, name: str, k: int, colors: int = 1, fresh: nn.Module | None = None
) -> nn.Module:
    """Adapt the first layer of ``module`` at dotted ``path`` in place; return that layer.

    The layer keeps its class (e.g. timm's ``Conv2dSame``); its ``weight`` is replaced by the
    strategy's (O, k·colors, h, w) kernel and ``in_channels`` updated. ``random`` copies the
    weight and bias of ``fresh``, the same layer of a randomly initialized twin built with
    k·colors input channels. ``mirror`` registers :class:`MirrorSymmetric` on the weight.
    """
    strategy = check_strategy(name, k, colors)
    conv = module.get_submodule(path)
    if strategy.reinit:
        if fresh is None:
            raise ValueError(f"the {name} strategy re-initializes the first layer: pass the fresh layer as fresh=")
        new_w = fresh.weight.detach().clone()
        if conv.bias is not None and getattr(fresh, "bias", None) is not None:
            conv.bias = nn.Parameter(fresh.bias.detach().clone())
    else:
        new_w = adapt_weight(conv.weight, name, k, colors)
    conv.weight = nn.Parameter(new_w.contiguous())
    conv.in_channels = k * colors
    if strategy.mirrored:
        parametrize.register_parametrization(conv, "weight", MirrorSymmetric(k, colors))
    return conv
