"""The status of a study's cells: done / failed / pending (:class:`Summary`), and whether a finished cell's
training learned anything (:func:`training_status`, from its training log ``train/logs/version_*/metrics.csv``).

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

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from slicewise.studies.grid import ERROR, RESULT, Cell, cell_dir, read_result

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
