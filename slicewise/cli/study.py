"""CLI commands: ``slicewise study STUDY [--smoke] [--out DIR] [--cells 0-3,7] [--list] [--gpus 0,1]`` and
``slicewise study init TEMPLATE --raw RAW --labels LABELS --train-z A:B --test-z C:D [--label-map ...]``
(``study init`` is routed to the hidden command named "study init" by :func:`slicewise.cli.main`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from slicewise.cli import app

if TYPE_CHECKING:
    from slicewise.studies.schema import Study


@app.command("study")
def study_cmd(
    study: Annotated[
        str,
        typer.Argument(
            help="Study YAML file, a packaged study (bias, skips, pretraining, emsam), or - "
            "to read it from standard input (saved as OUT/study.yaml)."
        ),
    ],
    out: Annotated[
        Optional[Path], typer.Option("--out", help="Output folder (default runs/study-<name>[-smoke]).")
    ] = None,
    smoke: Annotated[
        bool, typer.Option("--smoke", help="Tiny run (the file's smoke: overrides): minutes on a CPU.")
    ] = False,
    cells: Annotated[
        Optional[str], typer.Option("--cells", help="Cell indices to run, e.g. 0-3,7 (job arrays: one index).")
    ] = None,
    list_cells: Annotated[bool, typer.Option("--list", help="List the cells with their status and exit.")] = False,
    gpus: Annotated[
        Optional[str], typer.Option("--gpus", help="Run cells in parallel, one process per GPU, e.g. 0,1,2,3.")
    ] = None,
    data_root: Annotated[
        Optional[Path], typer.Option("--data-root", help="Folder the study's data paths are relative to.")
    ] = None,
    set_: Annotated[
        Optional[list[str]], typer.Option("--set", help="Override a study-file key, e.g. base.trainer.max_steps=10.")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Recompute cells finished under another configuration.")
    ] = False,
    no_report: Annotated[bool, typer.Option("--no-report", help="Run cells only; skip tables and report.")] = False,
    report_only: Annotated[
        bool, typer.Option("--report-only", help="Aggregate finished cells only; run nothing.")
    ] = False,
) -> None:
    """Run a study grid (resumable: finished cells are never redone), then write tables, statistics and report.

    `slicewise study init bias --raw RAW --labels LABELS --train-z 0:14 --test-z 16:20 > my_bias.yaml` writes a
    study file for your own volume (see `slicewise study init --help`).

    Exit status 0 only when every selected cell is done; failed cells give one ``error:`` line and status 2."""
    from slicewise.studies.schema import load_study

    source = _study_source(study, out, smoke)
    if study == "-":
        out = out or Path(source).parent
    st = load_study(source, smoke=smoke, overrides=set_, data_root=data_root)  # its mistakes: one line, before torch
    if list_cells:
        given = {"--gpus": bool(gpus), "--no-report": no_report, "--report-only": report_only, "--overwrite": overwrite}
        _list_cells(st, out, smoke, cells, [flag for flag, on in given.items() if on])
        return
    from slicewise.studies.execute import CellsFailedError, failure_message, run_study
    from slicewise.studies.schema import default_out

    summary = run_study(
        source,
        out,
        smoke=smoke,
        cells=cells,
        gpus=gpus,
        overrides=set_ or [],
        data_root=data_root,
        overwrite=overwrite,
        report=not no_report,
        report_only=report_only,
        echo=typer.echo,
    )
    if summary.failed or (summary.pending and not report_only):
        raise CellsFailedError(failure_message(st.name, out or default_out(st.name, smoke), summary))


def _study_source(study: str, out: Path | None, smoke: bool) -> str:
    """The study file to run: ``study`` as given, or, for ``-``, standard input saved as OUT/study.yaml. A mistyped
    study file path is said before the studies package (statistics, training) is imported."""
    from slicewise.errors import InputError

    named = Path(study)
    if study != "-" and not named.exists() and (named.suffix.lower() in (".yaml", ".yml") or len(named.parts) > 1):
        raise InputError(
            f"study file {study} does not exist: check the path (packaged studies are named without .yaml, e.g. bias)"
        )
    if study != "-":
        return study
    from slicewise.studies.schema import piped_study  # `slicewise study init ... | slicewise study - --smoke`

    return str(piped_study(sys.stdin.read(), out, smoke))


def _list_cells(st: Study, out: Path | None, smoke: bool, cells: str | None, ignored: list[str]) -> None:
    """``--list``: one line per selected cell (index, status, parameters), then the counts."""
    from slicewise.errors import InputError
    from slicewise.studies.grid import grid_cells, parse_cells
    from slicewise.studies.schema import default_out
    from slicewise.studies.status import summarize

    if ignored:
        raise InputError(f"--list only lists the cells and their status; {ignored[0]} would do nothing: drop it")
    all_cells = grid_cells(st)
    chosen = [all_cells[i] for i in parse_cells(cells, len(all_cells))]
    s = summarize(out or default_out(st.name, smoke), chosen)
    status = {c.id: "done" for c in s.done} | {c.id: "failed" for c in s.failed}
    for c in chosen:
        params = " ".join(f"{k}={v}" for k, v in c.params.items())
        typer.echo(f"{c.index:4d}  {status.get(c.id, 'pending'):7s}  {params}")
    typer.echo(s.line(st.name))


@app.command("study init", hidden=True)
def study_init_cmd(
    template: Annotated[str, typer.Argument(help="Packaged study to adapt: bias, skips, emsam or pretraining.")],
    raw: Annotated[str, typer.Option("--raw", help="Your grayscale EM stack (TIFF, image folder, file.h5:key, Zarr).")],
    labels: Annotated[
        str, typer.Option("--labels", help="Its labels, same shape (class ids, or ISBI-style 0/255 membrane maps).")
    ],
    train_z: Annotated[
        str, typer.Option("--train-z", help="Slices training may read, START:STOP (validation: their last quarter).")
    ],
    test_z: Annotated[
        str,
        typer.Option(
            "--test-z", help="Held-out test slices START:STOP; they and their context must lie outside --train-z."
        ),
    ],
    label_map: Annotated[
        Optional[str],
        typer.Option(
            "--label-map",
            help="Label value → class, e.g. 0:1,255:0 (class 1 is scored; default: "
            "ISBI convention for 0/255 labels, else the values as classes).",
        ),
    ] = None,
    unlabelled: Annotated[
        Optional[list[str]],
        typer.Option(
            "--unlabelled", help="pretraining: more unlabelled volumes to pretrain on (repeat the option for several)."
        ),
    ] = None,
    fractions: Annotated[
        Optional[str],
        typer.Option(
            "--fractions",
            help="pretraining: labelled fractions of the training slices, e.g. 0.05,0.1,0.25,1 (the default).",
        ),
    ] = None,
    seeds: Annotated[
        Optional[int], typer.Option("--seeds", help="pretraining: seeds per arm and fraction (default 3).")
    ] = None,
    method: Annotated[
        Optional[str],
        typer.Option("--method", help="pretraining: self-supervised method, mocov2 (default), vicreg, byol or mim."),
    ] = None,
    pretrained: Annotated[
        Optional[list[str]],
        typer.Option(
            "--pretrained",
            help="pretraining: an encoder.safetensors of `slicewise pretrain`, one more arm (repeatable).",
        ),
    ] = None,
) -> None:
    """Write a ready study file for your own volume to stdout: `slicewise study init bias --raw RAW --labels LABELS
    --train-z 0:14 --test-z 16:20 > my_bias.yaml`, then `slicewise study my_bias.yaml --smoke`. `study init pretraining
    ... [--unlabelled MORE] [--pretrained encoder.safetensors] [--fractions 0.05,0.1,0.25,1] [--seeds 3] | slicewise
    study - --smoke`: random / ImageNet / self-supervised on your volume (from scratch, from ImageNet) x fractions x
    seeds."""
    from slicewise.studies.init import init_study

    given = {
        "unlabelled": unlabelled,
        "fractions": fractions,
        "seeds": seeds,
        "method": method,
        "pretrained": pretrained,
    }
    recipe = {k: v for k, v in given.items() if v is not None}
    typer.echo(init_study(template, raw, labels, train_z, test_z, label_map, **recipe), nl=False)
