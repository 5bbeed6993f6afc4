"""Running a study: resumable cells in this process, one process per GPU, or one cell per array job.

Finished cells (``result.json``) are never redone; a failed cell leaves ``error.txt`` and the grid
goes on; a rerun retries failed and pending cells.

Parallel: ``--gpus 0,1,2,3`` runs one process per GPU (``CUDA_VISIBLE_DEVICES``), one cell each
(``python -m slicewise.studies.worker``, which calls :func:`run_study` for that cell).
Job arrays: one cell per job, then one more run (or the last job) aggregates, e.g. SLURM::

    #SBATCH --array=0-49
    slicewise study bias --out runs/bias --cells $SLURM_ARRAY_TASK_ID --no-report
    # afterwards (or as a dependent job): slicewise study bias --out runs/bias --report-only
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from slicewise.data.io.outputs import atomic_path
from slicewise.errors import ConfigError, InputError, SlicewiseError
from slicewise.studies.aggregate import aggregate
from slicewise.studies.cells import CELL_KINDS
from slicewise.studies.grid import (
    ERROR,
    RESULT,
    Cell,
    CellContext,
    CellFn,
    cell_dir,
    check_fingerprints,
    fingerprint,
    grid_cells,
    parse_cells,
)
from slicewise.studies.preflight import check_weights
from slicewise.studies.schema import Study, check_data, default_out, load_study, resolve_study_path
from slicewise.studies.status import Summary, summarize
from slicewise.utils import progress
from slicewise.utils.atomic import check_writable_folder, claim_output
from slicewise.utils.environment import environment_info
from slicewise.utils.progress import status
from slicewise.utils.signals import resume_hint

LOG = "log.txt"  # a --gpus child's stdout and stderr, in its cell folder
_PARENT_ENV = "_SLICEWISE_STUDY_PARENT"  # pid of a --gpus parent that holds the claims of its children's cells


class CellsFailedError(SlicewiseError):
    """Some cells of a study run failed (each left ``error.txt``); a rerun retries them."""


def resolve_cell_fn(kind: str) -> CellFn:
    """A built-in cell kind (:data:`slicewise.studies.cells.CELL_KINDS`) or ``module:function``."""
    if ":" in kind:
        mod, _, fn = kind.partition(":")
        try:
            return getattr(importlib.import_module(mod), fn)
        except (ImportError, AttributeError) as err:
            raise ConfigError(f"cell {kind!r} cannot be imported ({err}): check the module:function name") from None
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
        payload = {
            "study": study.name,
            "index": cell.index,
            "cell": cell.id,
            "params": cell.params,
            "fingerprint": fingerprint(study, cell),
            "smoke": smoke,
            "elapsed_s": round(time.time() - start, 3),
            "metrics": metrics,
            "info": res.get("info", {}),
            "environment": _cell_environment(cell),
        }
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


def _cell_environment(cell: Cell) -> dict[str, Any]:
    """:func:`slicewise.utils.environment.environment_info` of the process that ran the cell (device: the
    first CUDA device when one is visible, as training picks it; the cell's seed)."""
    import torch

    seed = cell.params.get("seed")
    seed = int(seed) if isinstance(seed, (int, float)) else None
    try:
        return environment_info(device="cuda" if torch.cuda.is_available() else None, seed=seed)
    except (RuntimeError, AssertionError) as err:  # a CUDA that reports itself but cannot be queried
        return {"unavailable": f"{type(err).__name__}: {err}"[:300], "seed": seed}


def _json_default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


def parse_gpus(spec: str | Sequence[str | int] | None) -> list[str]:
    """``"0,1"`` (or a sequence) → ``["0", "1"]``: distinct GPU indices >= 0 of CUDA devices that exist.

    An index is valid when CUDA is available and it is below ``torch.cuda.device_count()``, or, when
    ``CUDA_VISIBLE_DEVICES`` lists indices, one of those (each child is started with
    ``CUDA_VISIBLE_DEVICES=<index>``). Anything else is one line naming the bad item.
    """
    if spec is None:
        return []
    text = spec if isinstance(spec, str) else ",".join(map(str, spec))
    if not text.strip():
        return []
    ids = _gpu_indices(text)
    known = _cuda_devices(text)
    missing = [g for g in ids if g not in known]
    if missing:
        raise ConfigError(
            f"--gpus {text}: GPU {missing[0]} does not exist here; the GPUs are {', '.join(known) or 'none'}"
        )
    return ids


def _gpu_indices(text: str) -> list[str]:
    """``"0, 1"`` → ``["0", "1"]``: indices >= 0, each once (the syntax of ``--gpus``, before CUDA is asked)."""
    items = [g.strip() for g in text.split(",")]
    bad = [g for g in items if not g.isdigit()]
    if bad:
        raise ConfigError(
            f"--gpus {text!r}: {bad[0]!r} is not a GPU index: give indices >= 0 separated by commas, e.g. 0,1"
        )
    ids = [str(int(g)) for g in items]
    if len(set(ids)) != len(ids):
        twice = next(g for g in ids if ids.count(g) > 1)
        raise ConfigError(f"--gpus {text!r}: GPU {twice} is listed twice: list each GPU once")
    return ids


def _cuda_devices(text: str) -> list[str]:
    """The GPU indices a child may be given: those of ``CUDA_VISIBLE_DEVICES`` when it lists indices, else
    ``0 .. device_count − 1``; one line when CUDA is not usable here."""
    import torch

    if not torch.cuda.is_available():
        raise ConfigError(
            f"--gpus {text}: this machine has no usable CUDA GPU (torch.cuda.is_available() is False): "
            f"drop --gpus to run the cells one after another here"
        )
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")]
    if visible != [""] and all(v.isdigit() for v in visible):
        return visible
    return [str(i) for i in range(torch.cuda.device_count())]


WORKER = "slicewise.studies.worker"
"""The module each ``--gpus`` child runs (``python -m``): one JSON object of :func:`run_study`'s keyword arguments."""


def worker_command(
    source: str, out: Path, index: int, smoke: bool, overrides: Sequence[str], data_root: Path
) -> list[str]:
    """The command line of the child process that runs cell ``index`` (:mod:`slicewise.studies.worker`), without a
    report (the parent aggregates)."""
    kwargs = {
        "source": source,
        "out": str(out),
        "cells": str(index),
        "smoke": smoke,
        "overrides": list(overrides),
        "data_root": str(data_root),
        "report": False,
    }
    return [sys.executable, "-m", WORKER, json.dumps(kwargs)]


def run_parallel(
    source: str,
    cells: Sequence[Cell],
    out: Path,
    gpus: Sequence[str],
    smoke: bool,
    overrides: Sequence[str],
    data_root: Path,
    echo: Callable[[str], None] = print,
) -> None:
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
                    log = open(d / LOG, "w")  # noqa: SIM115 (closed when the child ends)
                    env = {**os.environ, "CUDA_VISIBLE_DEVICES": gpu, _PARENT_ENV: str(os.getpid())}
                    proc = subprocess.Popen(
                        worker_command(source, out, c.index, smoke, overrides, data_root),
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        env=env,
                    )
                    running[gpu] = (proc, c, log)
                    echo(f"cell {c.index} ({c.id}) started on GPU {gpu}")
            time.sleep(0.2)
            for gpu, (proc, c, log) in list(running.items()):
                if proc.poll() is not None:
                    log.close()
                    del running[gpu]
                    ok = (cell_dir(out, c) / RESULT).is_file()
                    echo(f"cell {c.index} ({c.id}) {'done' if ok else f'FAILED, see {cell_dir(out, c) / LOG}'}")
    finally:
        for proc, _, log in running.values():
            proc.terminate()
            proc.wait()
            log.close()


def run_study(
    source: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    smoke: bool = False,
    cells: str | None = None,
    gpus: str | Sequence[str] | None = (),
    overrides: Sequence[str] = (),
    data_root: str | os.PathLike | None = None,
    overwrite: bool = False,
    report: bool = True,
    report_only: bool = False,
    cell_fn: CellFn | None = None,
    echo: Callable[[str], None] = print,
) -> Summary:
    """Run (the selected, unfinished cells of) a study, then aggregate.

    Prints the whole grid's done/failed/pending counts at start and end; returns the final
    summary of the selected cells.

    ``source``: a study YAML or a packaged name. ``out`` defaults to ``runs/study-<name>[-smoke]``.
    ``cell_fn`` replaces the study's cell kind (tests). ``report_only``: aggregate, run nothing (refused
    when ``out`` holds no finished cell, or together with ``report=False``). ``gpus``: see :func:`parse_gpus`.
    A run refused before any cell started leaves no folder it created.
    """
    if report_only and not report:
        raise ConfigError("--report-only and --no-report contradict each other: give one of them")
    if report_only and gpus:
        raise ConfigError("--gpus places cells on GPUs and --report-only runs no cell: drop --gpus")
    study = load_study(source, smoke=smoke, overrides=overrides, data_root=data_root)
    out_dir = Path(out) if out is not None else default_out(study.name, smoke)
    all_cells = grid_cells(study)
    selected = [all_cells[i] for i in parse_cells(cells, len(all_cells))]
    if report_only and not summarize(out_dir, all_cells).done:
        raise InputError(
            f"{out_dir} holds no finished cells of study {study.name}: run the study first, or check --out "
            f"(and --smoke, which selects another default folder)"
        )
    gpus = parse_gpus(gpus) if gpus and not report_only else []
    made = [p for p in (out_dir, *out_dir.parents) if not p.exists()]
    try:
        with resume_hint(
            f"rerun the same study command to resume (--out {out_dir}): finished cells are kept, the "
            f"interrupted cell continues from its last checkpoint"
        ):
            return _run(
                study,
                source,
                out_dir,
                all_cells,
                selected,
                smoke=smoke,
                gpus=gpus,
                overrides=overrides,
                overwrite=overwrite,
                report=report,
                report_only=report_only,
                cell_fn=cell_fn,
                echo=echo,
            )
    except BaseException:
        _remove_empty(out_dir, made)
        raise


def _remove_empty(out_dir: Path, made: Sequence[Path]) -> None:
    """After a failed run: delete the folders it created (``made``: ``out_dir`` and the parents it lacked)
    when they hold no file, e.g. the empty ``OUT/cells/`` of a run refused before its first cell."""
    if not made or not out_dir.is_dir():
        return
    for root, _, _ in sorted(os.walk(out_dir), key=lambda t: -len(Path(t[0]).parts)):
        with contextlib.suppress(OSError):
            Path(root).rmdir()  # only succeeds for an empty folder
    for p in made:
        with contextlib.suppress(OSError):
            p.rmdir()


def _run(
    study: Study,
    source: str | os.PathLike,
    out_dir: Path,
    all_cells: Sequence[Cell],
    selected: Sequence[Cell],
    *,
    smoke: bool,
    gpus: Sequence[str],
    overrides: Sequence[str],
    overwrite: bool,
    report: bool,
    report_only: bool,
    cell_fn: CellFn | None,
    echo: Callable[[str], None],
) -> Summary:
    """The body of :func:`run_study` once its arguments are checked."""
    check_writable_folder(out_dir, what=f"study folder {out_dir}")
    check_fingerprints(study, out_dir, selected, overwrite=overwrite)
    echo(summarize(out_dir, all_cells).line(study.name))
    summary = summarize(out_dir, selected)
    todo = sorted([*summary.failed, *summary.pending], key=lambda c: c.index)
    if todo and not report_only:
        root = check_data(study)
        if cell_fn is None:  # the study's own cells: every one's weights obtainable before the first starts
            check_weights(study, todo)
        with claim_cells(out_dir, todo):
            if gpus:
                run_parallel(str(resolve_study_path(source)), todo, out_dir, gpus, smoke, overrides, root, echo)
            else:
                fn = cell_fn or resolve_cell_fn(study.cell)
                for i, c in enumerate(progress(todo, desc=f"study {study.name}", total=len(todo)), 1):
                    status(
                        "study %s cell %d/%d (#%d): %s",
                        study.name,
                        i,
                        len(todo),
                        c.index,
                        " ".join(f"{k}={v}" for k, v in c.params.items()),
                    )
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
    why = _last_line(cell_dir(out, c) / ERROR) if c in summary.failed else f"no result; see {cell_dir(out, c) / LOG}"
    return (
        f"study {study_name}: {len(bad)} of {total} selected cell(s) failed (cell {c.index} {c.id}: {why}); "
        f"see {cell_dir(out, c)}/error.txt (log.txt for --gpus), fix the cause and rerun to retry them"
    )


def _last_line(p: Path) -> str:
    lines = [ln for ln in p.read_text().splitlines() if ln.strip()] if p.is_file() else []
    return lines[-1].strip() if lines else "unknown error"
