"""Aggregating a study: the tidy results table, the status and provenance of every cell, statistics and the
report.

Outputs: ``OUT/results.csv`` (tidy: one row per cell and metric, with the cell's ``status``;
``results.parquet`` too when pyarrow is installed), ``OUT/cells.csv`` (one row per cell: status, the
rule's reason, final loss, validation metric; :mod:`slicewise.studies.status`), ``OUT/provenance.json``
(how each cell was trained and on what, the environment), ``OUT/stats.csv`` + ``OUT/stats.json`` (paired
tests, Holm-corrected, over the ``ok`` cells), ``OUT/report.html`` + ``OUT/figures/*.png``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from slicewise.data import open_volume
from slicewise.data.io.outputs import atomic_path
from slicewise.studies.grid import Cell, cell_dir, read_result
from slicewise.studies.report import write_study_report
from slicewise.studies.schema import Study
from slicewise.studies.stats import study_statistics
from slicewise.studies.status import ERRORED, OK, cell_table, summarize
from slicewise.utils.environment import environment_info
from slicewise.utils.identity import input_identity


def tidy_results(
    out: Path, cells: Sequence[Cell], axes: Sequence[str], status: dict[str, str] | None = None
) -> tuple[pd.DataFrame, list[str]]:
    """One row per (done) cell and metric record: cell, index, axes, label columns, metric, value, status.

    ``status``: cell id → status (:func:`slicewise.studies.status.cell_table`); a cell that failed with an
    error gets one row with an empty metric and value and status ``error``. Returns the table and the names of
    the label columns (record keys besides metric/value).
    """
    status = status or {}
    rows: list[dict[str, Any]] = []
    labels: list[str] = []
    for c in cells:
        res = read_result(out, c)
        if res is None:
            if status.get(c.id) == ERRORED:
                rows.append(
                    {
                        "cell": c.id,
                        "index": c.index,
                        **c.params,
                        "metric": None,
                        "value": float("nan"),
                        "status": ERRORED,
                    }
                )
            continue
        for rec in res["metrics"]:
            extra = {k: v for k, v in rec.items() if k not in ("metric", "value")}
            labels.extend(k for k in extra if k not in labels and k not in axes)
            rows.append(
                {
                    "cell": c.id,
                    "index": c.index,
                    **c.params,
                    **extra,
                    "metric": rec["metric"],
                    "value": rec["value"],
                    "status": status.get(c.id, OK),
                }
            )
    cols = ["cell", "index", *axes, *labels, "metric", "value", "status"]
    return pd.DataFrame(rows, columns=cols), labels


PROVENANCE_KEYS = {
    "steps": "trainer.max_steps",
    "val_every": "trainer.val_every",
    "precision": "trainer.precision",
    "patch_size": "data.patch_size",
    "batch_size": "data.batch_size",
    "val_range": "data.val_range",
    "train_fraction": "data.train_fraction",
    "lr": "optim.lr",
    "warmup_steps": "optim.warmup_steps",
    "encoder": "model.encoder",
    "weights": "model.weights",
    "channel_init": "model.channel_init",
    "in_slices": "model.in_slices",
    "skips": "model.skips",
    "seed": "seed",
    "augment": "augment",
    "loss": "loss",
    "synthetic": "data.synthetic",
}
"""What the provenance records of each cell's training run, from its resolved config (``train/inputs.json``)."""


def _get(conf: dict[str, Any], dotted: str) -> Any:
    node: Any = conf
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def provenance(study: Study, out: Path, cells: Sequence[Cell], smoke: bool = False) -> dict[str, Any]:
    """How each cell's model was trained and on what: per cell the settings of :data:`PROVENANCE_KEYS`
    from its resolved training config, the identity of its training data
    (:func:`slicewise.utils.identity.input_identity`, recorded by training) and the environment it ran
    in; for the study the data section (crop, split z-ranges), the identity of its data files, and the
    environment of this aggregation (:func:`slicewise.utils.environment.environment_info`)."""
    cell_recs: dict[str, Any] = {}
    for c in cells:
        res = read_result(out, c)
        if res is None:
            continue
        rec: dict[str, Any] = {"index": c.index, "params": c.params}
        inputs = cell_dir(out, c) / "train" / "inputs.json"
        if inputs.is_file():
            try:
                run = json.loads(inputs.read_text())
            except (OSError, ValueError):
                run = {}
            conf = run.get("config", {})
            rec["training"] = {k: _get(conf, v) for k, v in PROVENANCE_KEYS.items()}
            if _get(conf, "data.raw"):  # trained on files: the (default) synthetic-data settings do not apply
                rec["training"].pop("synthetic")
            rec["data_identity"] = run.get("data", {})
        rec["environment"] = res.get("environment")
        cell_recs[c.id] = rec
    return {
        "study": study.name,
        "smoke": smoke,
        "cell_kind": study.cell,
        "data": study.data,
        "data_identity": _data_identity(study),
        "extras": study.extras,
        "environment": _environment(environment_info),
        "cells": cell_recs,
    }


def _environment(info: Any) -> dict[str, Any]:
    """``info()`` (:func:`~slicewise.utils.environment.environment_info`), or what went wrong reading it."""
    try:
        return info()
    except (RuntimeError, AssertionError) as err:  # a CUDA that reports itself but cannot be queried
        return {"unavailable": f"{type(err).__name__}: {err}"[:300]}


def _data_identity(study: Study) -> dict[str, Any]:
    """``input_identity`` of the study's data files (``data.raw`` / ``labels`` / ``images``...), where readable."""
    out: dict[str, Any] = {}
    root = Path(study.data_root).expanduser()
    for key in ("raw", "labels"):
        rel = study.data.get(key)
        if not isinstance(rel, str):
            continue
        path = root / rel
        try:
            with open_volume(path) as vol:
                out[key] = input_identity(vol, path)
        except Exception as err:  # noqa: BLE001 - provenance records what it can; the cells already read the data
            out[key] = {"path": str(path), "unreadable": f"{type(err).__name__}: {err}"[:200]}
    return out


def aggregate(study: Study, out: Path, cells: Sequence[Cell], smoke: bool = False) -> dict[str, Path]:
    """Write results.csv (+ .parquet), stats.csv + stats.json, figures/*.png and report.html."""
    axes = list(study.grid)
    status = cell_table(out, cells)
    table, labels = tidy_results(out, cells, axes, dict(zip(status["cell"], status["status"])) if len(status) else {})
    paths: dict[str, Path] = {
        "results": out / "results.csv",
        "stats": out / "stats.csv",
        "cells": out / "cells.csv",
        "provenance": out / "provenance.json",
    }
    with atomic_path(paths["results"]) as tmp:
        table.to_csv(tmp, index=False)
    with atomic_path(paths["cells"]) as tmp:
        status.to_csv(tmp, index=False)
    prov = provenance(study, out, cells, smoke)
    with atomic_path(paths["provenance"]) as tmp:
        tmp.write_text(json.dumps(prov, indent=1, default=str))
    try:
        import pyarrow  # noqa: F401

        with atomic_path(out / "results.parquet") as tmp:
            table.astype({c: str for c in (*axes, *labels)}).to_parquet(tmp, index=False)
        paths["parquet"] = out / "results.parquet"
    except ImportError:
        pass
    ok = table[table["status"] == OK]
    stats = study_statistics(ok, study.comparisons, axes, labels, study.stats) if not ok.empty else pd.DataFrame()
    with atomic_path(paths["stats"]) as tmp:
        stats.to_csv(tmp, index=False)
    with atomic_path(out / "stats.json") as tmp:
        tmp.write_text(stats.to_json(orient="records", indent=1))
    paths["stats_json"] = out / "stats.json"
    summary = summarize(out, cells)
    paths["report"] = write_study_report(study, out, table, stats, summary, smoke, cells=status, provenance=prov)
    return paths
