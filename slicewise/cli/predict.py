"""CLI command ``slicewise predict``: whole-volume probabilities / labels."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from slicewise.cli import app


@app.command("predict")
def predict_cmd(
    model: Path = typer.Argument(..., help="Model file written by `slicewise train` / save_model."),
    input: str = typer.Argument(..., help="Volume: TIFF, PNG / image folder, HDF5 (file.h5:key), Zarr."),
    output: Path = typer.Argument(..., help="Output .zarr (group), .h5 (datasets probabilities / labels) or .tif (one array)."),
    tile: int = typer.Option(256, "--tile", help="Tile size in pixels (shrunk on short axes to the model's size divisor)."),
    overlap: float = typer.Option(0.25, "--overlap", help="Tile overlap as a fraction of the tile, in [0, 1)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Tiles per forward pass (mixed across slices and positions)."),
    tta: bool = typer.Option(False, "--tta", help="Test-time augmentation: average over H/W flips and z-reversal of the stack."),
    labels: bool = typer.Option(False, "--labels", help="Write the label map (argmax over the classes)."),
    probabilities: bool = typer.Option(False, "--probabilities", help="Write probabilities (C, Z, Y, X); the default. Both flags: both."),
    chunk_z: Optional[int] = typer.Option(None, "--chunk-z", help="Z-chunk size (slices) of a .zarr output, streamed chunk by chunk (default 16); an interrupted run resumes."),
    dask: bool = typer.Option(False, "--dask", help="Run the z-chunks as a dask graph (needs a .zarr output; a running dask.distributed Client is used)."),
    dz: int = typer.Option(1, "--dz", help="Z-step between the context slices of a stack."),
    border: str = typer.Option("reflect", "--border", help="Context slices beyond the volume ends: reflect or replicate."),
    key: Optional[str] = typer.Option(None, "--key", help="Dataset key of the input inside HDF5 / Zarr."),
    device: str = typer.Option("auto", "--device", help="auto (cuda when available), cpu, cuda or cuda:N."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
) -> None:
    """Predict every slice of INPUT with MODEL (2.5D stacks, Gaussian-blended tiles) and write OUTPUT."""
    from slicewise.infer.predict import predict
    from slicewise.models import load_model
    from slicewise.utils import check_output_path

    check_output_path(output, overwrite=overwrite)
    kind = "both" if labels and probabilities else "labels" if labels else "probabilities"
    net = load_model(model)
    out = predict(
        net, input, tile=tile, overlap=overlap, batch_size=batch_size, dz=dz, border=border, tta=tta, device=device,
        output=output, output_kind=kind, chunk_z=chunk_z,
        overwrite=overwrite, key=key, scheduler="dask" if dask else None,
    )
    typer.echo(str(out))
