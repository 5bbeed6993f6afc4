"""CLI command ``slicewise predict``: block-wise probabilities / labels into a store."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from slicewise.cli import app


@app.command("predict")
def predict_cmd(
    model: Path = typer.Argument(..., help="Model file written by `slicewise train` / save_model."),
    input: str = typer.Argument(..., help="Volume: TIFF, PNG / image folder, HDF5 (file.h5:key), Zarr / OME-Zarr."),
    output: Path = typer.Argument(
        ..., help="Output .zarr (OME-Zarr image + labels), .h5 (datasets probabilities / labels) or .tif (one array)."
    ),
    tile: int = typer.Option(
        256, "--tile", help="Tile size in pixels (a multiple of the model's size divisor; shrunk on short axes)."
    ),
    overlap: float = typer.Option(0.25, "--overlap", help="Tile overlap as a fraction of the tile, in [0, 1)."),
    batch_size: int = typer.Option(
        8, "--batch-size", help="Tiles per forward pass (mixed across slices and positions)."
    ),
    tta: bool = typer.Option(
        False, "--tta", help="Test-time augmentation: average over H/W flips and z-reversal of the stack."
    ),
    labels: bool = typer.Option(False, "--labels", help="Write the label map (argmax over the classes)."),
    probabilities: bool = typer.Option(
        False, "--probabilities", help="Write probabilities (C, Z, Y, X); the default. Both flags: both."
    ),
    block: str = typer.Option(
        "32,1024,1024",
        "--block",
        help="Block shape Z,Y,X (voxels): memory is bounded by a block plus its halo; an "
        "interrupted run resumes by blocks.",
    ),
    dtype: str = typer.Option(
        "float32", "--dtype", help="Stored probabilities: float32, float16 or uint8 (round(255·p), |Δp| <= 1/510)."
    ),
    z: Optional[str] = typer.Option(
        None, "--z", help="Predict only slices START:STOP (half-open); context slices outside are still read."
    ),
    roi: Optional[str] = typer.Option(
        None,
        "--roi",
        help="Predict only the region z0:z1,y0:y1,x0:x1 (half-open); context and tile halos outside are still read.",
    ),
    normalize: str = typer.Option(
        "none",
        "--normalize",
        help="Intensities: none (integers ÷ dtype max — integers other than uint8/uint16 must be "
        "non-negative and reach 1/256 of their dtype maximum; float must lie in [0, 1]; else "
        "refused) or percentile (0.1–99.9th percentiles → [0, 1], clipped).",
    ),
    dask: Optional[str] = typer.Option(
        None,
        "--dask",
        help="Run the blocks on dask.distributed: local:N (N worker processes) or tcp://host:port (a "
        "running scheduler).",
    ),
    dz: Optional[int] = typer.Option(
        None,
        "--dz",
        help="Z-step between the context slices of a stack (default: the bioimage.io package's dz, else 1).",
    ),
    border: Optional[str] = typer.Option(
        None,
        "--border",
        help="Context slices beyond the volume ends: reflect or replicate (default: the bioimage.io package's "
        "border, else reflect).",
    ),
    key: Optional[str] = typer.Option(None, "--key", help="Dataset key of the input inside HDF5 / Zarr."),
    device: str = typer.Option("auto", "--device", help="auto (cuda when available), cpu, cuda or cuda:N."),
    compile: str = typer.Option(
        "false",
        "--compile",
        help="torch.compile the network: false, true (inductor) or a backend name "
        "(e.g. aot_eager); batches keep one shape, the first ones are slow while it compiles.",
    ),
    cuda_graphs: bool = typer.Option(
        False,
        "--cuda-graphs",
        help="Replay a CUDA graph per fixed-shape batch (CUDA only; ignored with a log line on a CPU).",
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace an existing output (and discard a partial one)."
    ),
) -> None:
    """Predict INPUT with MODEL (2.5D stacks, Gaussian-blended tiles, block by block) and write OUTPUT.

    Float input must be finite and in [0, 1], and integers other than uint8/uint16 non-negative and using their
    range, unless --normalize percentile is given; NaN/Inf are refused.
    An interrupted run resumes when rerun with the same settings, model and unchanged input.
    """
    from slicewise.data import open_volume
    from slicewise.data.io.outputs import check_output_path
    from slicewise.data.io.stores import check_output_kind
    from slicewise.data.roi import combine
    from slicewise.infer.predict import predict_to
    from slicewise.infer.settings import PredictSettings
    from slicewise.models.spec import check_model_arg
    from slicewise.utils.atomic import claim_output

    check_model_arg(model)  # paths and keys first, without torch: a typo is answered at once
    open_volume(input, key=key).close()
    kind = "both" if labels and probabilities else "labels" if labels else "probabilities"
    settings = PredictSettings(
        tile=tile,
        overlap=overlap,
        batch_size=batch_size,
        dz=dz,
        border=border,
        tta=tta,
        device=device,
        output_kind=kind,
        dtype=dtype,
        block=block,
        roi=combine(z, roi),
        normalize=normalize,
        dask=dask,
        compile=compile,
        cuda_graphs=cuda_graphs,
    )
    out = check_output_path(check_output_kind(output, kind), overwrite=overwrite, inputs=(input, model))
    from slicewise.models import load_model

    with claim_output(out):
        net = load_model(model)  # a bioimage.io package brings its dz and border (used unless given here)
        result = predict_to(net if dask is None else model, input, out, settings, key=key, overwrite=overwrite)
    typer.echo(str(result))
