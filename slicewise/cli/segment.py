"""CLI command ``slicewise segment``: probabilities → instance labels."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from slicewise.cli import app


@app.command("segment")
def segment_cmd(
    prob: Path = typer.Argument(..., help="Probabilities from `slicewise predict` (.zarr / .h5 / .tif) or a foreground map."),
    output: Path = typer.Argument(..., help="Instance label map to write (int32): .tif, .h5 or .zarr."),
    mode: str = typer.Option("cc", "--mode", help="cc (connected components) or watershed (splits touching objects)."),
    use: str = typer.Option("boundary", "--use", help="Watershed on the boundary channel or on a distance map (distance head, else EDT of the mask)."),
    foreground_channel: Optional[str] = typer.Option(
        None, "--foreground-channel",
        help="Foreground channel, index or name (class1, ...); default 1 - P(class0), or the only channel."),
    boundary_channel: Optional[str] = typer.Option(
        None, "--boundary-channel", help="Boundary channel, index or name; default the channel named 'boundary'."),
    distance_channel: Optional[str] = typer.Option(
        None, "--distance-channel", help="Distance channel, index or name; default 'distance', else the EDT of the mask."),
    foreground_threshold: float = typer.Option(0.5, "--foreground-threshold", help="Mask = foreground probability above this."),
    boundary_threshold: float = typer.Option(0.5, "--boundary-threshold", help="Watershed seeds need boundary below this."),
    seed_threshold: Optional[float] = typer.Option(
        None, "--seed-threshold",
        help="Seeds: foreground above this (boundary mode, default the foreground threshold) or distance above this (distance mode, default local maxima)."),
    min_distance: int = typer.Option(3, "--min-distance", help="Distance mode: minimum spacing of local-maximum seeds (pixels)."),
    per_slice: bool = typer.Option(False, "--per-slice/--3d", help="Label each slice in 2-D (ids unique across slices) or the volume in 3-D."),
    min_size: int = typer.Option(0, "--min-size", help="Remove objects smaller than this many voxels."),
    key: Optional[str] = typer.Option(None, "--key", help="Dataset key inside .zarr / .h5 (default: probabilities)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
) -> None:
    """Turn probabilities into instance labels (connected components or seeded watershed)."""
    from slicewise.infer.instances import segment

    labels = segment(
        prob, mode=mode, use=use, foreground_channel=foreground_channel, boundary_channel=boundary_channel,  # type: ignore[arg-type]
        distance_channel=distance_channel, foreground_threshold=foreground_threshold,
        boundary_threshold=boundary_threshold, seed_threshold=seed_threshold, min_distance=min_distance,
        per_slice=per_slice, min_size=min_size, key=key, output=output, overwrite=overwrite,
    )
    typer.echo(f"{output}: {int(labels.max())} objects")
