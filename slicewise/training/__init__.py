"""Training: losses, the Lightning module and data module, and :func:`train`.

``slicewise.train(config | dict | path, overrides=None, out=None, resume=False) -> TrainResult`` is
:func:`slicewise.training.train`; see :mod:`slicewise.training.run` for the run folder layout and
multi-GPU (DDP) launch. The package is named ``training`` so that ``slicewise.train`` stays the
function (a subpackage ``train`` would rebind the parent's attribute to itself on import).
"""

from __future__ import annotations

from slicewise.training.run import TrainResult, resolve_config, train

__all__ = ["TrainResult", "resolve_config", "train"]
