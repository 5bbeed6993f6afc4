"""Studies: study files, the grid of resumable cells, running it, aggregation, paired statistics.

``run_study("bias", out, smoke=True)`` runs the packaged ``bias.yaml``; see
:mod:`slicewise.studies.schema` for the study-file format and docs/studies.md for the studies.

``run_study`` is loaded on first use: running cells needs training (torch), while reading study files,
listing cells and the statistics do not.
"""

from typing import Any

from slicewise.studies.grid import CellContext
from slicewise.studies.schema import load_study, packaged_studies
from slicewise.studies.stats import (
    Comparison,
    holm,
    mean_ci,
    min_detectable_effect,
    paired_stats,
    pairs_needed,
    study_statistics,
    tost_paired,
    wilcoxon_min_p,
)

__all__ = [
    "CellContext",
    "Comparison",
    "holm",
    "load_study",
    "mean_ci",
    "min_detectable_effect",
    "packaged_studies",
    "paired_stats",
    "pairs_needed",
    "run_study",
    "study_statistics",
    "tost_paired",
    "wilcoxon_min_p",
]


def __getattr__(name: str) -> Any:
    if name == "run_study":
        from slicewise.studies.execute import run_study

        return run_study
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
