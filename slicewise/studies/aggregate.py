"""Aggregating a study: the done / failed / pending :class:`Summary`, the tidy results table, statistics
and the report.

Outputs: ``OUT/results.csv`` (tidy: one row per cell and metric; ``results.parquet`` too when
pyarrow is installed), ``OUT/stats.csv`` + ``OUT/stats.json`` (paired tests, Holm-corrected),
``OUT/report.html`` + ``OUT/figures/*.png``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from slicewise.studies.grid import ERROR, RESULT, Cell, cell_dir, read_result
from slicewise.studies.schema import Study
from slicewise.studies.stats import study_statistics
from slicewise.utils import atomic_path


@dataclass
class Summary:
    """Counts of done / failed / pending cells (of the selected ones)."""

    done: list[Cell] = field(default_factory=list)
    failed: list[Cell] = field(default_factory=list)
    pending: list[Cell] = field(default_factory=list)

    def line(self, name: str) -> str:
        """``study bias: 10 cells: 4 done, 1 failed, 5 pending``."""
        n = len(self.done) + len(self.failed) + len(self.pending)
        return f"study {name}: {n} cells: {len(self.done)} done, {len(self.failed)} failed, {len(self.pending)} pending"


def summarize(out: Path, cells: Sequence[Cell]) -> Summary:
    """Which of ``cells`` are done (result.json), failed (error.txt only) or pending."""
    s = Summary()
    for c in cells:
        d = cell_dir(out, c)
        (s.done if (d / RESULT).is_file() else s.failed if (d / ERROR).is_file() else s.pending).append(c)
    return s


def tidy_results(out: Path, cells: Sequence[Cell], axes: Sequence[str]) -> tuple[pd.DataFrame, list[str]]:
    """One row per (done) cell and metric record: cell, index, axes, label columns, metric, value.

    Returns the table and the names of the label columns (record keys besides metric/value).
    """
    rows: list[dict[str, Any]] = []
    labels: list[str] = []
    for c in cells:
        res = read_result(out, c)
        if res is None:
            continue
        for rec in res["metrics"]:
            extra = {k: v for k, v in rec.items() if k not in ("metric", "value")}
            labels.extend(k for k in extra if k not in labels and k not in axes)
            rows.append({"cell": c.id, "index": c.index, **c.params, **extra,
                         "metric": rec["metric"], "value": rec["value"]})
    cols = ["cell", "index", *axes, *labels, "metric", "value"]
    return pd.DataFrame(rows, columns=cols), labels


def aggregate(study: Study, out: Path, cells: Sequence[Cell], smoke: bool = False) -> dict[str, Path]:
    """Write results.csv (+ .parquet), stats.csv + stats.json, figures/*.png and report.html."""
    from slicewise.studies.report import write_study_report

    axes = list(study.grid)
    table, labels = tidy_results(out, cells, axes)
    paths: dict[str, Path] = {"results": out / "results.csv", "stats": out / "stats.csv"}
    with atomic_path(paths["results"]) as tmp:
        table.to_csv(tmp, index=False)
    try:
        import pyarrow  # noqa: F401

        with atomic_path(out / "results.parquet") as tmp:
            table.astype({c: str for c in (*axes, *labels)}).to_parquet(tmp, index=False)
        paths["parquet"] = out / "results.parquet"
    except ImportError:
        pass
    stats = study_statistics(table, study.comparisons, axes, labels, study.stats) if not table.empty else pd.DataFrame()
    with atomic_path(paths["stats"]) as tmp:
        stats.to_csv(tmp, index=False)
    with atomic_path(out / "stats.json") as tmp:
        tmp.write_text(stats.to_json(orient="records", indent=1))
    paths["stats_json"] = out / "stats.json"
    summary = summarize(out, cells)
    paths["report"] = write_study_report(study, out, table, stats, summary, smoke)
    return paths

