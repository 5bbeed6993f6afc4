"""slicewise: transfer learning for 2.5D and 2-D biomedical image segmentation.

Public API (imported lazily so the CLI starts fast)::

    build_model, load_model, save_model   # slicewise.models
    train                                 # slicewise.training (the function; the package is slicewise.training)
    pretrain                              # slicewise.selfsup (self-supervised encoder pretraining)
    predict, predict_to, PredictSettings  # slicewise.infer (block-wise prediction)
    read_prediction                       # slicewise.data.io (read any prediction output)
    segment                               # slicewise.segment (instances)
    evaluate                              # slicewise.metrics
    audit                                 # slicewise.diagnostics (namespace: weights, attribution, shift)
    open_volume, write_volume, stack_slices, make_phantom   # slicewise.data
    run_study                             # slicewise.studies
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "build_model": "slicewise.models",
    "load_model": "slicewise.models",
    "save_model": "slicewise.models",
    "train": "slicewise.training",
    "pretrain": "slicewise.selfsup",
    "predict": "slicewise.infer",
    "predict_to": "slicewise.infer",
    "PredictSettings": "slicewise.infer",
    "read_prediction": "slicewise.data.io",
    "segment": "slicewise.segment",
    "evaluate": "slicewise.metrics",
    "open_volume": "slicewise.data",
    "write_volume": "slicewise.data",
    "stack_slices": "slicewise.data",
    "make_phantom": "slicewise.data",
    "run_study": "slicewise.studies",
    "SlicewiseError": "slicewise.errors",
}

__all__ = [
    "PredictSettings",
    "SlicewiseError",
    "__version__",
    "audit",
    "build_model",
    "evaluate",
    "load_model",
    "make_phantom",
    "open_volume",
    "predict",
    "predict_to",
    "pretrain",
    "read_prediction",
    "run_study",
    "save_model",
    "segment",
    "stack_slices",
    "train",
    "write_volume",
]


def __getattr__(name: str) -> Any:
    if name == "audit":
        return importlib.import_module("slicewise.diagnostics")
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'slicewise' has no attribute {name!r}")
