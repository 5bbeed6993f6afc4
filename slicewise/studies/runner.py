"""Grid runner for studies: resumable cells, parallel GPUs or job arrays, aggregation and report.

A study file (YAML; see ``slicewise/studies/*.yaml`` and docs/studies.md) declares

- ``cell``: what one cell does (a name in :data:`slicewise.studies.cells.CELL_KINDS`, or
  ``package.module:function`` for your own),
- ``data_root`` + ``data``: where the data lies (paths relative to ``data_root``; override with
  ``--data-root`` or ``SLICEWISE_DATA_ROOT``),
- ``base``: the base training config (sections of :class:`slicewise.config.TrainConfig`),
- ``presets``: named levels of an axis, each a config fragment deep-merged into ``base``
  (e.g. ``encoder: {sam: {model: {encoder: samvit_base_patch16, img_size: 256}}}``),
- ``grid``: axis → levels (encoder, weights, channel_init, skips, fraction, seed, or any dotted
  config key); cells are the Cartesian product in file order (last axis fastest),
- ``extras``: study-specific settings (shifts, attribution method, ...),
- ``comparisons``: which axis, baseline level vs others, metric, paired over what (see
  :class:`slicewise.studies.stats.Comparison`), ``figures``: profile plots, ``stats``: alpha etc.,
- ``smoke``: overrides deep-merged over the file for ``--smoke`` (tiny steps and crops).

Each cell runs in ``OUT/cells/<cell-id>/``; ``result.json`` is written atomically at the very end,
so a cell is done iff its ``result.json`` exists. Finished cells are never redone; a failed cell
leaves ``error.txt`` and the grid goes on; a rerun retries failed and pending cells.

Parallel: ``--gpus 0,1,2,3`` runs one process per GPU (``CUDA_VISIBLE_DEVICES``), one cell each.
Job arrays: one cell per job, then one more run (or the last job) aggregates, e.g. SLURM::

    #SBATCH --array=0-39
    slicewise study bias --out runs/bias --cells $SLURM_ARRAY_TASK_ID --no-report
    # afterwards (or as a dependent job): slicewise study bias --out runs/bias --report-only

Outputs: ``OUT/results.csv`` (tidy: one row per cell and metric; ``results.parquet`` too when
pyarrow is installed), ``OUT/stats.csv`` + ``OUT/stats.json`` (paired tests, Holm-corrected),
``OUT/report.html`` + ``OUT/figures/*.png``.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.resources
import itertools
import json
import os
import re
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import Field

from slicewise.config import (
    StrictModel,
    deep_merge,
    parse_overrides,
    read_yaml_mapping,
    validate_with_overrides,
)
from slicewise.errors import ConfigError, InputError, SlicewiseError
from slicewise.studies.stats import Comparison, StatsSettings, study_statistics
from slicewise.utils import atomic_path, progress
from slicewise.utils.atomic import check_writable_folder, claim_output
from slicewise.utils.progress import status

RESULT = "result.json"
ERROR = "error.txt"
DATA_ROOT_ENV = "SLICEWISE_DATA_ROOT"
_PARENT_ENV = "_SLICEWISE_STUDY_PARENT"  # pid of a --gpus parent that holds the claims of its children's cells


class CellsFailedError(SlicewiseError):
    """Some cells of a study run failed (each left ``error.txt``); a rerun retries them."""


class Figure(StrictModel):
    """A profile plot: mean ± CI of ``metric`` against label ``x``, one line per ``hue`` level,
    one panel per ``facet`` level (e.g. slice shares per slice, Hellinger per layer)."""

    metric: str
    x: str
    hue: str | None = None
    facet: str | None = None
    where: dict[str, Any] = Field(default_factory=dict)
    title: str = ""


class Study(StrictModel):
    """A study file after the smoke overrides are applied (see the module docstring)."""

    name: str
    description: str = ""
    cell: str
    data_root: str = "../shared/data"
    data: dict[str, Any] = Field(default_factory=dict)
    requires: list[str] = Field(default_factory=list)
    base: dict[str, Any] = Field(default_factory=dict)
    presets: dict[str, dict[str, dict[str, Any]]] = Field(default_factory=dict)
    grid: dict[str, list[Any]]
    extras: dict[str, Any] = Field(default_factory=dict)
    comparisons: list[Comparison] = Field(default_factory=list)
    figures: list[Figure] = Field(default_factory=list)
    stats: StatsSettings = Field(default_factory=StatsSettings)
    smoke: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class Cell:
    """One point of the grid: position, folder name and axis values."""

    index: int
    id: str
    params: dict[str, Any]


@dataclass
class CellContext:
    """What a cell function gets: the resolved study, its cell, its folder and the data root."""

    study: Study
    cell: Cell
    workdir: Path
    data_root: Path
    smoke: bool = False

    def path(self, relative: str) -> Path:
        """A data file named in the study, relative to ``data_root``."""
        return self.data_root / relative


CellFn = Callable[[CellContext], Mapping[str, Any]]


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


# --------------------------------------------------------------------------- study files


def packaged_studies() -> list[str]:
    """Names of the study files shipped with slicewise (``bias``, ``skips``, ...)."""
    root = importlib.resources.files("slicewise.studies")
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))


def resolve_study_path(name_or_path: str | os.PathLike) -> Path:
    """A YAML path as given, or a packaged study by name (``bias`` → slicewise/studies/bias.yaml)."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    if p.suffix not in (".yaml", ".yml") and str(name_or_path) in packaged_studies():
        return Path(str(importlib.resources.files("slicewise.studies") / f"{name_or_path}.yaml"))
    raise InputError(f"study {str(name_or_path)!r} is neither a file nor a packaged study; "
                     f"packaged: {', '.join(packaged_studies())}")


def load_study(name_or_path: str | os.PathLike, smoke: bool = False, overrides: Sequence[str] | None = None,
               data_root: str | os.PathLike | None = None) -> Study:
    """Read a study file, apply ``smoke:`` (if ``smoke``) and ``key=value`` overrides, validate.

    ``data_root``: the ``--data-root`` option; else ``$SLICEWISE_DATA_ROOT``; else the file's value.
    """
    path = resolve_study_path(name_or_path)
    raw = read_yaml_mapping(path)
    if smoke:
        extra = raw.get("smoke") or {}
        if not isinstance(extra, dict):
            raise ConfigError(f"{path.name}: 'smoke' must be a mapping of overrides")
        raw = deep_merge(raw, extra)
    raw = deep_merge(raw, parse_overrides(list(overrides or [])))
    if data_root is not None:
        raw["data_root"] = str(data_root)
    elif os.environ.get(DATA_ROOT_ENV):
        raw["data_root"] = os.environ[DATA_ROOT_ENV]
    study = validate_with_overrides(Study, raw, list(overrides or []), path.name)
    if not study.grid or any(not levels for levels in study.grid.values()):
        raise ConfigError(f"{path.name}: 'grid' needs at least one axis with at least one level")
    axes = set(study.grid)
    for comp in study.comparisons:
        if comp.axis not in axes:
            raise ConfigError(f"{path.name}: comparison axis {comp.axis!r} is not a grid axis ({', '.join(study.grid)})")
        if str(comp.baseline) not in map(str, study.grid[comp.axis]):
            raise ConfigError(f"{path.name}: baseline {comp.baseline!r} is not a level of {comp.axis!r} "
                              f"({', '.join(map(str, study.grid[comp.axis]))})")
    return study


def check_data(study: Study) -> Path:
    """Resolve ``data_root`` and check that every file in ``requires`` exists (one-line error if not)."""
    root = Path(study.data_root).expanduser()
    for rel in study.requires:
        if not (root / rel).exists():
            raise InputError(f"study {study.name}: data file {root / rel} not found: pass --data-root DIR "
                             f"(the folder holding {rel}) or set {DATA_ROOT_ENV}")
    return root.resolve()


# --------------------------------------------------------------------------- cells


def _slug(value: Any) -> str:
    return re.sub(r"[^A-Za-z0-9.=+-]+", "_", str(value)).strip("_") or "x"


def cell_id(params: Mapping[str, Any]) -> str:
    """Folder name of a cell: ``channel_init-rgb__seed-0`` (hashed suffix when very long)."""
    text = "__".join(f"{_slug(k)}-{_slug(v)}" for k, v in params.items())
    if len(text) > 120:
        text = text[:100] + "-" + hashlib.sha1(text.encode()).hexdigest()[:10]
    return text


def grid_cells(study: Study) -> list[Cell]:
    """All cells: the Cartesian product of the grid axes in file order (last axis fastest)."""
    axes = list(study.grid)
    cells = []
    for i, values in enumerate(itertools.product(*(study.grid[a] for a in axes))):
        params = dict(zip(axes, values))
        cells.append(Cell(i, cell_id(params), params))
    return cells


def parse_cells(spec: str | None, n: int) -> list[int]:
    """``"0-3,7"`` → [0, 1, 2, 3, 7]; ``None`` → all; indices outside 0..n-1 are a one-line error."""
    if spec is None or spec.strip() == "":
        return list(range(n))
    out: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise ConfigError(f"--cells {spec!r}: use indices and ranges like 0-3,7")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo or hi >= n:
            raise ConfigError(f"--cells {spec!r}: the study has cells 0-{n - 1}")
        out.extend(i for i in range(lo, hi + 1) if i not in out)
    return out


def json_hash(obj: Any, length: int = 16) -> str:
    """First ``length`` hex digits of the SHA-1 of ``obj`` as canonical JSON (sorted keys, ``str`` for the rest)."""
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:length]


def fingerprint(study: Study, cell: Cell) -> str:
    """Hash of everything that determines a cell's result (not the data location, not the grid size)."""
    presets = {a: study.presets[a].get(str(v)) for a, v in cell.params.items() if a in study.presets}
    payload = {"cell": study.cell, "data": study.data, "base": study.base, "extras": study.extras,
               "presets": presets, "params": cell.params}
    return json_hash(payload)


def cell_dir(out: Path, cell: Cell) -> Path:
    """``OUT/cells/<cell-id>``."""
    return out / "cells" / cell.id


def read_result(out: Path, cell: Cell) -> dict[str, Any] | None:
    """The cell's result.json, or None when the cell is not done."""
    p = cell_dir(out, cell) / RESULT
    return json.loads(p.read_text()) if p.is_file() else None


def summarize(out: Path, cells: Sequence[Cell]) -> Summary:
    """Which of ``cells`` are done (result.json), failed (error.txt only) or pending."""
    s = Summary()
    for c in cells:
        d = cell_dir(out, c)
        (s.done if (d / RESULT).is_file() else s.failed if (d / ERROR).is_file() else s.pending).append(c)
    return s


def check_fingerprints(study: Study, out: Path, cells: Sequence[Cell], overwrite: bool = False) -> None:
    """Finished cells computed from another configuration: error, or (``overwrite``) mark them pending."""
    stale = []
    for c in cells:
        res = read_result(out, c)
        if res is not None and res.get("fingerprint") != fingerprint(study, c):
            stale.append(c)
    if stale and not overwrite:
        raise ConfigError(f"{out}: {len(stale)} finished cell(s) (e.g. cells/{stale[0].id}) were computed with another "
                          f"study configuration: use another --out, or --overwrite to recompute them")
    for c in stale:
        (cell_dir(out, c) / RESULT).unlink()


def resolve_cell_fn(kind: str) -> CellFn:
    """A built-in cell kind (:data:`slicewise.studies.cells.CELL_KINDS`) or ``module:function``."""
    if ":" in kind:
        mod, _, fn = kind.partition(":")
        try:
            return getattr(importlib.import_module(mod), fn)
        except (ImportError, AttributeError) as err:
            raise ConfigError(f"cell {kind!r} cannot be imported ({err}): check the module:function name") from None
    from slicewise.studies.cells import CELL_KINDS

    if kind not in CELL_KINDS:
        raise ConfigError(f"unknown cell kind {kind!r}; built-in: {', '.join(CELL_KINDS)} (or module:function)")
    return CELL_KINDS[kind]


def run_cell(study: Study, cell: Cell, out: Path, data_root: Path, cell_fn: CellFn, smoke: bool = False) -> bool:
    """Run one cell; write result.json atomically on success, error.txt on failure. True iff done."""
    d = cell_dir(out, cell)
    d.mkdir(parents=True, exist_ok=True)
    (d / ERROR).unlink(missing_ok=True)
    start = time.time()
    try:
        res = dict(cell_fn(CellContext(study, cell, d, data_root, smoke)))
        metrics = [dict(r) for r in res.get("metrics", [])]
        for r in metrics:
            if "metric" not in r or "value" not in r:
                raise ValueError(f"cell result record {r!r} lacks 'metric' or 'value'")
            r["value"] = float(r["value"])
        payload = {"study": study.name, "index": cell.index, "cell": cell.id, "params": cell.params,
                   "fingerprint": fingerprint(study, cell), "smoke": smoke, "elapsed_s": round(time.time() - start, 3),
                   "metrics": metrics, "info": res.get("info", {})}
        text = json.dumps(payload, indent=1, default=_json_default)
    except KeyboardInterrupt:
        raise
    except Exception:
        with atomic_path(d / ERROR) as tmp:
            tmp.write_text(traceback.format_exc())
        return False
    with atomic_path(d / RESULT) as tmp:
        tmp.write_text(text)
    return True


def _json_default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def _child_command(source: str, out: Path, index: int, smoke: bool, overrides: Sequence[str],
                   data_root: Path) -> list[str]:
    cmd = [sys.executable, "-m", "slicewise.cli", "study", source, "--out", str(out), "--cells", str(index),
           "--no-report", "--data-root", str(data_root)]
    if smoke:
        cmd.append("--smoke")
    for o in overrides:
        cmd += ["--set", o]
    return cmd


def run_parallel(source: str, cells: Sequence[Cell], out: Path, gpus: Sequence[str], smoke: bool,
                 overrides: Sequence[str], data_root: Path, echo: Callable[[str], None] = print) -> None:
    """One child process per GPU (``CUDA_VISIBLE_DEVICES=<gpu>``), one cell each, until all ran.

    A child's stdout/stderr go to ``OUT/cells/<id>/log.txt``.
    """
    queue = list(cells)
    running: dict[str, tuple[subprocess.Popen, Cell, Any]] = {}
    try:
        while queue or running:
            for gpu in gpus:
                if gpu not in running and queue:
                    c = queue.pop(0)
                    d = cell_dir(out, c)
                    d.mkdir(parents=True, exist_ok=True)
                    log = open(d / "log.txt", "w")  # noqa: SIM115 (closed when the child ends)
                    env = {**os.environ, "CUDA_VISIBLE_DEVICES": gpu, _PARENT_ENV: str(os.getpid())}
                    proc = subprocess.Popen(_child_command(source, out, c.index, smoke, overrides, data_root),
                                            stdout=log, stderr=subprocess.STDOUT, env=env)
                    running[gpu] = (proc, c, log)
                    echo(f"cell {c.index} ({c.id}) started on GPU {gpu}")
            time.sleep(0.2)
            for gpu, (proc, c, log) in list(running.items()):
                if proc.poll() is not None:
                    log.close()
                    del running[gpu]
                    ok = (cell_dir(out, c) / RESULT).is_file()
                    echo(f"cell {c.index} ({c.id}) {'done' if ok else 'FAILED, see ' + str(cell_dir(out, c) / 'log.txt')}")
    finally:
        for proc, _, log in running.values():
            proc.terminate()
            proc.wait()
            log.close()


def run_study(source: str | os.PathLike, out: str | os.PathLike | None = None, *, smoke: bool = False,
              cells: str | None = None, gpus: Sequence[str] = (), overrides: Sequence[str] = (),
              data_root: str | os.PathLike | None = None, overwrite: bool = False, report: bool = True,
              report_only: bool = False, cell_fn: CellFn | None = None,
              echo: Callable[[str], None] = print) -> Summary:
    """Run (the selected, unfinished cells of) a study, then aggregate.

    Prints the whole grid's done/failed/pending counts at start and end; returns the final
    summary of the selected cells.

    ``source``: a study YAML or a packaged name. ``out`` defaults to ``runs/study-<name>[-smoke]``.
    ``cell_fn`` replaces the study's cell kind (tests). ``report_only``: aggregate, run nothing.
    """
    study = load_study(source, smoke=smoke, overrides=overrides, data_root=data_root)
    out_dir = Path(out) if out is not None else Path("runs") / f"study-{study.name}{'-smoke' if smoke else ''}"
    all_cells = grid_cells(study)
    selected = [all_cells[i] for i in parse_cells(cells, len(all_cells))]
    check_writable_folder(out_dir, what=f"study folder {out_dir}")
    check_fingerprints(study, out_dir, selected, overwrite=overwrite)
    echo(summarize(out_dir, all_cells).line(study.name))
    summary = summarize(out_dir, selected)
    todo = sorted([*summary.failed, *summary.pending], key=lambda c: c.index)
    if todo and not report_only:
        root = check_data(study)
        with claim_cells(out_dir, todo):
            if gpus:
                run_parallel(str(resolve_study_path(source)), todo, out_dir, gpus, smoke, overrides, root, echo)
            else:
                fn = cell_fn or resolve_cell_fn(study.cell)
                for i, c in enumerate(progress(todo, desc=f"study {study.name}", total=len(todo)), 1):
                    status("study %s cell %d/%d (#%d): %s", study.name, i, len(todo), c.index,
                           " ".join(f"{k}={v}" for k, v in c.params.items()))
                    if not run_cell(study, c, out_dir, root, fn, smoke):
                        echo(f"cell {c.index} ({c.id}) failed: {_last_line(cell_dir(out_dir, c) / ERROR)}")
        summary = summarize(out_dir, selected)
        echo(summarize(out_dir, all_cells).line(study.name))
    if report or report_only:
        paths = aggregate(study, out_dir, all_cells, smoke)
        if paths:
            echo(f"report: {paths['report']}")
    return summary


@contextlib.contextmanager
def claim_cells(out: Path, cells: Sequence[Cell]) -> Iterator[None]:
    """Claim the folders of ``cells`` (``claim_output``) for this run, all at its start.

    A second ``slicewise study --out`` on the same folder that would run any of the same cells is
    refused in one line before it computes; job arrays (disjoint ``--cells``) run side by side. A
    ``--gpus`` child runs under its parent's claims.
    """
    parent = os.environ.get(_PARENT_ENV, "")
    if parent.isdigit() and int(parent) == os.getppid():
        yield
        return
    with contextlib.ExitStack() as stack:
        for c in cells:
            stack.enter_context(claim_output(cell_dir(out, c)))
        yield


def failure_message(study_name: str, out: Path, summary: Summary) -> str:
    """One line for a run whose selected cells did not all finish: how many, the first one's last
    error line (or that it left no result, e.g. a killed ``--gpus`` child), where to look."""
    bad = sorted([*summary.failed, *summary.pending], key=lambda c: c.index)
    c = bad[0]
    total = len(summary.failed) + len(summary.done) + len(summary.pending)
    why = (_last_line(cell_dir(out, c) / ERROR) if c in summary.failed
           else f"no result; see {cell_dir(out, c) / 'log.txt'}")
    return (f"study {study_name}: {len(bad)} of {total} selected cell(s) failed (cell {c.index} {c.id}: {why}); "
            f"see {cell_dir(out, c)}/error.txt (log.txt for --gpus), fix the cause and rerun to retry them")


def _last_line(p: Path) -> str:
    lines = [ln for ln in p.read_text().splitlines() if ln.strip()] if p.is_file() else []
    return lines[-1].strip() if lines else "unknown error"


# --------------------------------------------------------------------------- aggregation


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
