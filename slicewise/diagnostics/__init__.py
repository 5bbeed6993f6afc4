"""Audits of pretraining biases (``slicewise.audit``): first-layer weights, attribution by input
slice, layer domain susceptibility, and their reports.

One name per audit: :func:`audit_weights` (``slicewise audit weights``), :func:`attribution_report`
(``slicewise audit attribution``), :func:`shift_report` (``slicewise audit shift``), plus
:func:`compare_models` and :func:`write_report`. (The short aliases ``weights``/``attribution``/``shift``
were removed: ``attribution`` shadowed the submodule ``slicewise.diagnostics.attribution``.)
"""

from __future__ import annotations

import warnings
from typing import Any

from slicewise.diagnostics.attribution import attribution_report, compare_models
from slicewise.diagnostics.hellinger import shift_report
from slicewise.diagnostics.report import write_report
from slicewise.diagnostics.weights_audit import audit_weights

__all__ = ["attribution_report", "audit_weights", "compare_models", "shift_report", "write_report"]

#: old short names, still answered with a DeprecationWarning (``attribution`` cannot be: it is the submodule).
_DEPRECATED = {"weights": "audit_weights", "shift": "shift_report"}


def __getattr__(name: str) -> Any:
    if name in _DEPRECATED:
        new = _DEPRECATED[name]
        warnings.warn(
            f"slicewise.audit.{name} is deprecated: use slicewise.audit.{new}", DeprecationWarning, stacklevel=2
        )
        return globals()[new]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
