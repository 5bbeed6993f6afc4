"""CLI: ``slicewise demo`` (the README's quickstart)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from slicewise.cli import app
from slicewise.demo.options import DEFAULT_STRATEGIES, check_demo_options, default_out, format_demo


@app.command()
def demo(
    raw: Annotated[
        Optional[Path],
        typer.Option(help="Raw EM stack (Z×Y×X; uint8/uint16, or float in [0, 1]); default: the synthetic phantom."),
    ] = None,
    labels: Annotated[
        Optional[Path], typer.Option(help="Label stack matching --raw (ISBI 0/255 membrane labels or class ids).")
    ] = None,
    out: Annotated[
        Optional[Path],
        typer.Option(
            help="Output folder (runs, results.json/.csv, slice_shares.png); default "
            "slicewise-demo for the phantom, slicewise-demo-<raw file name> for --raw."
        ),
    ] = None,
    steps: Annotated[int, typer.Option(help="Optimizer steps per fine-tuning run.")] = 100,
    patch: Annotated[int, typer.Option(help="Training/prediction tile side in pixels (multiple of 32).")] = 128,
    strategy: Annotated[
        Optional[list[str]], typer.Option(help="First-layer strategies to compare (repeatable).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for data, sampling and initialization.")] = 0,
    overwrite: Annotated[bool, typer.Option(help="Reuse a non-empty --out folder.")] = False,
) -> None:
    """Fine-tune EfficientNet-Lite0 (ImageNet) U-Nets with rgb and uniform first layers, predict held-out slices,
    compare."""
    options = {
        "raw": str(raw) if raw else None,
        "labels": str(labels) if labels else None,
        "out": default_out(raw) if out is None else out,
        "strategies": tuple(strategy) if strategy else DEFAULT_STRATEGIES,
        "steps": steps,
        "patch": patch,
        "seed": seed,
        "overwrite": overwrite,
    }
    check_demo_options(**options)  # before torch is imported
    from slicewise.demo.run import run_demo

    result = run_demo(**options)
    typer.echo(format_demo(result))
