"""``slicewise export``: share a trained model outside slicewise (bioimage.io model packages)."""

from __future__ import annotations

from pathlib import Path

import typer

from slicewise.cli import app

export_app = typer.Typer(
    no_args_is_help=True, help="Export models: bioimage.io model packages (needs the bioimageio extra)."
)
app.add_typer(export_app, name="export")


@export_app.command("bioimageio")
def bioimageio_cmd(
    model: Path = typer.Argument(
        ...,
        help="Model file written by `slicewise train` / save_model (its run folder's config.yaml gives dz and the "
        "training data).",
    ),
    output: Path = typer.Argument(..., help="Package to write, ending in .zip."),
    name: str | None = typer.Option(
        None, "--name", help="Package name (letters, digits, spaces, _+-()); default from the encoder and strategy."
    ),
    description: str | None = typer.Option(None, "--description", help="One-paragraph description."),
    author: list[str] | None = typer.Option(
        None, "--author", help="Author name (repeat for several; default: the current user)."
    ),
    license: str = typer.Option("MIT", "--license", help="SPDX licence id of the weights."),
    dz: int | None = typer.Option(
        None, "--dz", help="Z-step between context slices (default: the run's data.dz, else 1)."
    ),
    training_data: str | None = typer.Option(
        None, "--training-data", help="One line describing the training data (default: from the run's config.yaml)."
    ),
    cite: list[str] | None = typer.Option(
        None, "--cite", help="Extra citation as 'TEXT|DOI' (repeat), e.g. the training data's paper."
    ),
    tag: list[str] | None = typer.Option(None, "--tag", help="Extra tag (repeat)."),
    test_size: int = typer.Option(
        64,
        "--test-size",
        help="Side of the test tensor in pixels (rounded up to the size divisor and to the "
        "package's minimum input, 2 × halo + divisor).",
    ),
    torchscript: bool = typer.Option(
        True, "--torchscript/--no-torchscript", help="Also ship a traced TorchScript copy of the weights."
    ),
    test: bool = typer.Option(
        False,
        "--test",
        help="Run bioimageio.core's own test on the written package (offline) and fail unless it passes.",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
) -> None:
    """Write MODEL as a bioimage.io model package (format 0.5): weights, test tensors, cover, README, citations."""
    from slicewise.errors import InputError
    from slicewise.export.options import check_target, check_test_size

    check_target(model, output, overwrite)  # before torch is imported: a typo is answered at once
    check_test_size(test_size)
    cites = []
    for c in cite or []:
        text, sep, doi = c.rpartition("|")
        if not sep or not text.strip() or not doi.strip():
            raise InputError(
                f"--cite {c!r} must look like 'TEXT|DOI', e.g. 'Cardona et al. 2010|10.1371/journal.pbio.1000502'"
            )
        cites.append((text.strip(), doi.strip()))
    from slicewise.export import bioimageio

    out = bioimageio(
        model,
        output,
        name=name,
        description=description,
        authors=author or None,
        license=license,
        dz=dz,
        training_data=training_data,
        cite=cites,
        tags=tag or (),
        test_size=test_size,
        torchscript=torchscript,
        overwrite=overwrite,
    )
    if test:
        from slicewise.export.bmz import test_package

        summary = test_package(out)
        if summary != "passed":
            raise InputError(
                f"bioimage.io's test of {out} did not pass ({summary}): run `bioimageio test {out}` for details"
            )
        from slicewise.utils.progress import status

        status("bioimage.io test of %s passed (bioimageio.core test_description)", out)
    typer.echo(str(out))
