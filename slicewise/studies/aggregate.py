"""Aggregating a study: the done / failed / pending :class:`Summary`, the tidy results table, the status
and provenance of every cell, statistics and the report.

Outputs: ``OUT/results.csv`` (tidy: one row per cell and metric, with the cell's ``status``;
``results.parquet`` too when pyarrow is installed), ``OUT/cells.csv`` (one row per cell: status, the
rule's reason, final loss, validation metric), ``OUT/provenance.json`` (how each cell was trained and
on what, the environment), ``OUT/stats.csv`` + ``OUT/stats.json`` (paired tests, Holm-corrected),
``OUT/report.html`` + ``OUT/figures/*.png``.

Status of a cell (:func:`training_status`, from its training log ``train/logs/version_*/metrics.csv``):

- ``error``: the cell failed (``error.txt``, no ``result.json``): one row with an empty metric;
- ``failed-to-learn``: the validation metric (``val/dice``) never left its initial value (all of at
  least 2 checks within 1e-6 of the first), or the training loss did not fall (at least
  :data:`MIN_LOSS_POINTS` logged steps and the mean of the last quarter of ``train/loss`` above
  (1 − :data:`LOSS_DROP`) × the mean of the first quarter);
- ``ok``: otherwise, including cells without a training log (custom cells; nothing to check).

Only ``ok`` rows enter the tests, the summary table and the profile plots; failed cells stay in
``results.csv`` and are shown per seed in the report.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from slicewise.studies.grid import ERROR, RESULT, Cell, cell_dir, read_result
from slicewise.studies.schema import Study
from slicewise.studies.stats import study_statistics
from slicewise.utils import atomic_path

OK, FAILED_TO_LEARN, ERRORED = "ok", "failed-to-learn", "error"
FLAT_TOL = 1e-6
LOSS_DROP = 0.05
MIN_LOSS_POINTS = 8
VAL_METRIC = "val/dice"
LOSS = "train/loss"


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


def training_log(folder: Path) -> pd.DataFrame:
    """The training curve of a cell folder: every ``train/logs/version_*/metrics.csv`` (one per (re)start),
    concatenated and sorted by step; empty when there is none."""
    parts = []
    for f in sorted(
        (folder / "train" / "logs").glob("version_*/metrics.csv"),
        key=lambda p: int(p.parent.name.split("_")[-1]) if p.parent.name.split("_")[-1].isdigit() else 0,
    ):
        try:
            parts.append(pd.read_csv(f))
        except (OSError, ValueError, pd.errors.EmptyDataError):
            continue
    if not parts:
        return pd.DataFrame()
    log = pd.concat(parts, ignore_index=True)
    return log.sort_values("step", kind="stable").reset_index(drop=True) if "step" in log else log


def training_status(log: pd.DataFrame) -> tuple[str, str]:
    """(status, reason) of a training curve by the rule in the module docstring."""
    if log.empty:
        return OK, "no training log (not checked)"
    if VAL_METRIC in log:
        val = log[VAL_METRIC].dropna().to_numpy(dtype=float)
        if val.size >= 2 and float(abs(val - val[0]).max()) <= FLAT_TOL:
            return FAILED_TO_LEARN, f"{VAL_METRIC} stayed at {val[0]:.4g} over all {val.size} validation checks"
    if LOSS in log:
        loss = log[LOSS].dropna().to_numpy(dtype=float)
        if loss.size >= MIN_LOSS_POINTS:
            q = max(1, loss.size // 4)
            first, last = float(loss[:q].mean()), float(loss[-q:].mean())
            if last > (1 - LOSS_DROP) * first:
                return FAILED_TO_LEARN, (
                    f"{LOSS} did not fall: mean {last:.4g} over the last quarter vs {first:.4g} "
                    f"over the first (needs a drop of at least {LOSS_DROP:.0%})"
                )
    checks = int(log[VAL_METRIC].notna().sum()) if VAL_METRIC in log else 0
    losses = int(log[LOSS].notna().sum()) if LOSS in log else 0
    if checks < 2 and losses < MIN_LOSS_POINTS:
        return OK, (
            f"too short a log to judge ({checks} validation check(s), {losses} logged loss value(s)): counted ok"
        )
    return OK, "validation Dice moved and / or the loss fell"


def _last(log: pd.DataFrame, col: str) -> float:
    v = log[col].dropna() if col in log else pd.Series(dtype=float)
    return float(v.iloc[-1]) if len(v) else float("nan")


def cell_table(out: Path, cells: Sequence[Cell]) -> pd.DataFrame:
    """One row per cell: index, cell, axes, ``status`` (ok / failed-to-learn / error / pending), ``reason``,
    logged steps, final ``train/loss``, last and best ``val/dice``, elapsed seconds."""
    rows = []
    for c in cells:
        d = cell_dir(out, c)
        res = read_result(out, c)
        log = training_log(d)
        if res is None:
            status, reason = (ERRORED, _last_error(d / ERROR)) if (d / ERROR).is_file() else ("pending", "not run yet")
        else:
            status, reason = training_status(log)
        val = log[VAL_METRIC].dropna() if VAL_METRIC in log else pd.Series(dtype=float)
        rows.append(
            {
                "index": c.index,
                "cell": c.id,
                **c.params,
                "status": status,
                "reason": reason,
                "steps": int(log["step"].max()) + 1 if "step" in log and log["step"].notna().any() else None,
                "final_loss": _last(log, LOSS),
                "last_val_dice": _last(log, VAL_METRIC),
                "best_val_dice": float(val.max()) if len(val) else float("nan"),
                "elapsed_s": (res or {}).get("elapsed_s"),
            }
        )
    return pd.DataFrame(rows)


def _last_error(p: Path) -> str:
    lines = [ln.strip() for ln in p.read_text(errors="replace").splitlines() if ln.strip()] if p.is_file() else []
    return lines[-1][:300] if lines else "unknown error"


def tidy_results(
    out: Path, cells: Sequence[Cell], axes: Sequence[str], status: dict[str, str] | None = None
) -> tuple[pd.DataFrame, list[str]]:
    """One row per (done) cell and metric record: cell, index, axes, label columns, metric, value, status.

    ``status``: cell id → status (:func:`cell_table`); a cell that failed with an error gets one row with
    an empty metric and value and status ``error``. Returns the table and the names of the label columns
    (record keys besides metric/value).
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
    from slicewise.utils.environment import environment_info

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
    from slicewise.data import open_volume
    from slicewise.utils.identity import input_identity

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
    from slicewise.studies.report import write_study_report

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
