"""Segmentation models: timm encoders, first-layer channel strategies, U-Net decoder, weights.

Public API (loaded on first use, so torch-free modules such as :mod:`slicewise.models.spec` and
:mod:`slicewise.models.package` import without torch): :func:`build_model`, :func:`save_model`,
:func:`load_model`, :func:`model_info`, :func:`prediction_defaults`, :class:`SegmentationModel`,
:data:`STRATEGIES`, :data:`REGISTRY`.
"""

from __future__ import annotations

import importlib
from typing import Any

_API = {
    "SegmentationModel": "slicewise.models.build",
    "build_model": "slicewise.models.build",
    "save_model": "slicewise.models.build",
    "load_model": "slicewise.models.build",
    "model_info": "slicewise.models.build",
    "prediction_defaults": "slicewise.models.build",
    "STRATEGIES": "slicewise.models.channels",
    "ChannelStrategy": "slicewise.models.channels",
    "REGISTRY": "slicewise.models.weights",
    "WeightSource": "slicewise.models.weights",
    "register_weights": "slicewise.models.weights",
}

__all__ = list(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
