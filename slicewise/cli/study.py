"""CLI commands: ``slicewise study STUDY [--smoke] [--out DIR] [--cells 0-3,7] [--list] [--gpus 0,1]`` and
``slicewise study init TEMPLATE --raw RAW --labels LABELS --train-z A:B --test-z C:D [--label-map ...]``
(``study init`` is routed to the hidden command named "study init" by :func:`slicewise.cli.main`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from slicewise.cli import app


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
    from slicewise.errors import InputError

    named = Path(study)
    if study != "-" and not named.exists() and (named.suffix.lower() in (".yaml", ".yml") or len(named.parts) > 1):
        # a study file's path mistyped: said before the studies package (statistics, training) is imported
        raise InputError(
            f"study file {study} does not exist: check the path (packaged studies are named without .yaml, e.g. bias)"
        )
    from slicewise.studies.aggregate import summarize
    from slicewise.studies.execute import CellsFailedError, failure_message, run_study
    from slicewise.studies.grid import grid_cells, parse_cells
    from slicewise.studies.schema import load_study

    if study == "-":  # `slicewise study init ... | slicewise study - --smoke`
        from slicewise.studies.init import piped_study

        study = str(piped_study(sys.stdin.read(), out, smoke))
        out = out or Path(study).parent
    if list_cells:
        given = [
            flag
            for flag, on in (
                ("--gpus", bool(gpus)),
                ("--no-report", no_report),
                ("--report-only", report_only),
                ("--overwrite", overwrite),
            )
            if on
        ]
        if given:
            raise InputError(f"--list only lists the cells and their status; {given[0]} would do nothing: drop it")
        st = load_study(study, smoke=smoke, overrides=set_, data_root=data_root)
        out_dir = out or Path("runs") / f"study-{st.name}{'-smoke' if smoke else ''}"
        all_cells = grid_cells(st)
        chosen = [all_cells[i] for i in parse_cells(cells, len(all_cells))]
        s = summarize(out_dir, chosen)
        status = {c.id: "done" for c in s.done} | {c.id: "failed" for c in s.failed}
        for c in chosen:
            params = " ".join(f"{k}={v}" for k, v in c.params.items())
            typer.echo(f"{c.index:4d}  {status.get(c.id, 'pending'):7s}  {params}")
        typer.echo(s.line(st.name))
        return
    summary = run_study(
        study,
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
        name = load_study(study, smoke=smoke, overrides=set_, data_root=data_root).name
        out_dir = out or Path("runs") / f"study-{name}{'-smoke' if smoke else ''}"
        raise CellsFailedError(failure_message(name, out_dir, summary))


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
    study - --smoke`: random / ImageNet / self-supervised on your volume (from scratch, from ImageNet) x fractions x seeds."""
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
