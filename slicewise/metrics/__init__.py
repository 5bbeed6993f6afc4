"""Segmentation metrics on sparse contingency tables: Dice/IoU, adapted Rand, VOI, instance AP.

Argument order is always ``(pred, gt)``. Conventions (empty cases, ignored labels, units) are in
each module's docstring; :func:`evaluate` runs them all and returns a JSON-ready dict.
"""

import os
import warnings
from typing import Any

from slicewise.metrics.ap import (
    IOU_THRESHOLDS,
    average_precision,
    instance_ious,
    instance_scores,
    match_instances,
    seg_accuracy,
)
from slicewise.metrics.contingency import Contingency, contingency_table
from slicewise.metrics.evaluate import evaluate
from slicewise.metrics.neurons import membranes_to_neurons
from slicewise.metrics.overlap import dice, foreground_dice, iou
from slicewise.metrics.rand_voi import adapted_rand, voi
from slicewise.metrics.report import format_table
from slicewise.utils.atomic import write_json

__all__ = [
    "IOU_THRESHOLDS",
    "Contingency",
    "adapted_rand",
    "average_precision",
    "contingency_table",
    "dice",
    "evaluate",
    "foreground_dice",
    "format_table",
    "instance_ious",
    "instance_scores",
    "iou",
    "match_instances",
    "membranes_to_neurons",
    "seg_accuracy",
    "voi",
]


def _save_json(result: dict[str, Any], path: str | os.PathLike, overwrite: bool = False) -> None:
    write_json(path, result, overwrite=overwrite)


def __getattr__(name: str) -> Any:
    if name == "save_json":  # deprecated (reversed arguments): the one JSON writer is slicewise.utils.write_json
        warnings.warn(
            "slicewise.metrics.save_json(result, path) is deprecated: "
            "use slicewise.utils.write_json(path, result, overwrite=...)",
            DeprecationWarning,
            stacklevel=2,
        )
        return _save_json
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
