"""Training: losses, the Lightning module and data module, and :func:`train`.

``slicewise.train(config | dict | path, overrides=None, out=None, resume=False) -> TrainResult``;
see :mod:`slicewise.train.run` for the run folder layout and multi-GPU (DDP) launch.

Importing this package makes ``slicewise.train`` refer to the package rather than the function
(Python binds a subpackage to its parent's attribute), so the package itself is callable and
forwards to :func:`train`: ``slicewise.train(...)`` works either way.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from slicewise.train.run import TrainResult, resolve_config, train

__all__ = ["TrainResult", "resolve_config", "train"]


class _CallablePackage(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> TrainResult:
        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
