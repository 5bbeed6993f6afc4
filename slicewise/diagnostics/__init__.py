"""Audits of pretraining biases (``slicewise.audit``): first-layer weights, attribution by input
slice, layer domain susceptibility, and their reports.

``weights`` = :func:`audit_weights`, ``attribution`` = :func:`attribution_report`,
``shift`` = :func:`shift_report`, plus :func:`compare_models` and :func:`write_report`.
"""

from __future__ import annotations

from slicewise.diagnostics.attribution import attribution_report, compare_models
from slicewise.diagnostics.hellinger import shift_report
from slicewise.diagnostics.report import write_report
from slicewise.diagnostics.weights_audit import audit_weights

weights = audit_weights
attribution = attribution_report
shift = shift_report

__all__ = ["attribution", "attribution_report", "audit_weights", "compare_models", "shift", "shift_report", "weights",
           "write_report"]
