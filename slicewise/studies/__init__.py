"""Studies: grid runner (resumable cells), paired statistics, packaged study files.

``run_study("bias", out, smoke=True)`` runs the packaged ``bias.yaml``; see
:mod:`slicewise.studies.runner` for the study-file format and docs/studies.md for the studies.
"""

from slicewise.studies.runner import CellContext, load_study, packaged_studies, run_study
from slicewise.studies.stats import Comparison, holm, mean_ci, paired_stats, study_statistics

__all__ = ["CellContext", "Comparison", "holm", "load_study", "mean_ci", "packaged_studies", "paired_stats",
           "run_study", "study_statistics"]
