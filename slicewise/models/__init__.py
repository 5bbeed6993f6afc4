"""Segmentation models: timm encoders, first-layer channel strategies, U-Net decoder, weights.

Public API: :func:`build_model`, :func:`save_model`, :func:`load_model`, :func:`model_info`,
:class:`SegmentationModel`, :data:`STRATEGIES`, :data:`REGISTRY`.
"""

from __future__ import annotations

from slicewise.models.build import SegmentationModel, build_model, load_model, model_info, save_model
from slicewise.models.channels import STRATEGIES, ChannelStrategy
from slicewise.models.weights import REGISTRY, WeightSource, register_weights

__all__ = [
    "SegmentationModel",
    "build_model",
    "save_model",
    "load_model",
    "model_info",
    "STRATEGIES",
    "ChannelStrategy",
    "REGISTRY",
    "WeightSource",
    "register_weights",
]
