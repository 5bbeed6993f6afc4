"""What one study cell does: train (fine-tune), predict the test data, evaluate, audit.

A cell function takes a :class:`~slicewise.studies.grid.CellContext` and returns
``{"metrics": [record, ...], "info": {...}}``; a record is ``{"metric": name, "value": float,
**labels}`` where labels (``test``, ``stage``, ``slice``, ``layer``, ``shift``, ...) become columns
of the tidy results table. Built-in kinds (:data:`CELL_KINDS`): ``bias``, ``skips``,
``pretraining``, ``emsam``, one module each; the plumbing they share (and that your own cells can
use) is in :mod:`slicewise.studies.cells.common` and importable from here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from slicewise.studies.cells.bias import cell_bias
from slicewise.studies.cells.common import (
    AXIS_KEYS,
    Record,
    cell_config,
    em_volume,
    initial_model,
    predict_range,
    read_array,
    record,
    semantic_metrics,
    shared_dir,
    train_model,
    write_once,
)
from slicewise.studies.cells.emsam import cell_emsam
from slicewise.studies.cells.pretraining import cell_pretraining, monuseg_split
from slicewise.studies.cells.skips import cell_skips
from slicewise.studies.grid import CellContext

__all__ = [
    "AXIS_KEYS",
    "CELL_KINDS",
    "Record",
    "cell_bias",
    "cell_config",
    "cell_emsam",
    "cell_pretraining",
    "cell_skips",
    "em_volume",
    "initial_model",
    "monuseg_split",
    "predict_range",
    "read_array",
    "record",
    "semantic_metrics",
    "shared_dir",
    "train_model",
    "write_once",
]

CELL_KINDS: dict[str, Callable[[CellContext], Mapping[str, Any]]] = {
    "bias": cell_bias,
    "skips": cell_skips,
    "pretraining": cell_pretraining,
    "emsam": cell_emsam,
}
