"""Self-supervised pretraining of encoders on the user's own unlabelled volumes (``slicewise pretrain``).

``slicewise.pretrain(raw, out, config, overrides, resume, restart) -> PretrainResult`` is
:func:`slicewise.selfsup.run.pretrain`; methods (MoCo v2, BYOL, VICReg, from lightly; SimMIM masked image
modelling) are in :mod:`~slicewise.selfsup.methods`, the views (slicewise's augmentation kernels, z-context
positives) in :mod:`~slicewise.selfsup.views`, the collapse signal and k-NN probe in
:mod:`~slicewise.selfsup.probe`, and the weights file with its provenance in
:mod:`slicewise.models.encoder_file`. The package is not named ``pretrain`` so that ``slicewise.pretrain``
stays the function.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["PretrainResult", "pretrain", "resolve_pretrain_config"]

# imported on first use, so that a light submodule (views.check_unlabelled) does not load Lightning
_API = {
    "PretrainResult": "slicewise.selfsup.run",
    "pretrain": "slicewise.selfsup.run",
    "resolve_pretrain_config": "slicewise.config",
}


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'slicewise.selfsup' has no attribute {name!r}")
