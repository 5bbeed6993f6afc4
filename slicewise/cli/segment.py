"""CLI command ``slicewise segment``: probabilities → instance labels, block by block.

Memory is bounded by ``--block`` (plus the watershed ``--halo``), never the volume; connected
components are exact for any block, watershed as documented in :mod:`slicewise.segment`.
``--z`` / ``--roi`` select a box in source-volume coordinates (a ROI prediction's recorded offset is
taken into account); the labels are those of the box alone and record its offset. An interrupted run
resumes from its finished passes and blocks when the same command is run again (:mod:`slicewise.segment.resume`).
"""

from __future__ import annotations

from pathlib import Path

import typer

from slicewise.cli import app


@app.command("segment")
def segment_cmd(
    prob: Path = typer.Argument(
        ..., help="Probabilities from `slicewise predict` (.zarr / .h5 / .tif) or a foreground map."
    ),
    output: Path = typer.Argument(..., help="Instance label map to write (int32): .tif, .h5 or .zarr."),
    mode: str = typer.Option("cc", "--mode", help="cc (connected components) or watershed (splits touching objects)."),
    use: str = typer.Option(
        "boundary",
        "--use",
        help="Watershed on the boundary channel or on a distance map (distance head, else EDT of the mask).",
    ),
    foreground_channel: str | None = typer.Option(
        None,
        "--foreground-channel",
        help="Foreground channel, index or name (membrane, class1, ...); default the only channel, else the single "
        "class that is not background (by the model's class names), else 1 - P(channel 0) for unnamed channels; "
        "several named foreground classes must be chosen here.",
    ),
    boundary_channel: str | None = typer.Option(
        None, "--boundary-channel", help="Boundary channel, index or name; default the channel named 'boundary'."
    ),
    distance_channel: str | None = typer.Option(
        None,
        "--distance-channel",
        help="Distance channel, index or name; default 'distance', else the EDT of the mask.",
    ),
    foreground_threshold: float = typer.Option(
        0.5, "--foreground-threshold", help="Mask = foreground probability above this."
    ),
    boundary_threshold: float = typer.Option(
        0.5, "--boundary-threshold", help="Watershed seeds need boundary below this."
    ),
    seed_threshold: float | None = typer.Option(
        None,
        "--seed-threshold",
        help="Seeds: foreground above this (boundary mode, default the foreground threshold) or distance above "
        "this (distance mode, default local maxima).",
    ),
    min_distance: int = typer.Option(
        3, "--min-distance", help="Distance mode: minimum spacing of local-maximum seeds (pixels)."
    ),
    per_slice: bool = typer.Option(
        False, "--per-slice/--3d", help="Label each slice in 2-D (ids unique across slices) or the volume in 3-D."
    ),
    min_size: int = typer.Option(0, "--min-size", help="Remove objects smaller than this many voxels."),
    connectivity: int = typer.Option(
        1, "--connectivity", help="cc: 1 = face neighbours (scipy default), 2 = + edges, 3 = + corners."
    ),
    block: str | None = typer.Option(
        None, "--block", help="Block shape Z,Y,X processed at a time (default 64,1024,1024, clipped to the volume)."
    ),
    halo: str | None = typer.Option(
        None, "--halo", help="Watershed context read around each block, Z,Y,X voxels (default 8,64,64)."
    ),
    z: str | None = typer.Option(None, "--z", help="Slices START:STOP (half-open, source-volume coordinates)."),
    roi: str | None = typer.Option(None, "--roi", help="Box z0:z1,y0:y1,x0:x1 (half-open, source-volume coordinates)."),
    key: str | None = typer.Option(None, "--key", help="Dataset key inside .zarr / .h5 (default: probabilities)."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace an existing output (and discard an interrupted run's state)."
    ),
) -> None:
    """Turn probabilities into instance labels (connected components or seeded watershed)."""
    from slicewise.data.roi import combine, parse_block, parse_halo
    from slicewise.segment import segment_to

    res = segment_to(
        prob,
        output,
        mode=mode,
        use=use,
        foreground_channel=foreground_channel,
        boundary_channel=boundary_channel,  # type: ignore[arg-type]
        distance_channel=distance_channel,
        foreground_threshold=foreground_threshold,
        boundary_threshold=boundary_threshold,
        seed_threshold=seed_threshold,
        min_distance=min_distance,
        per_slice=per_slice,
        min_size=min_size,
        connectivity=connectivity,
        block=parse_block(block),
        halo=parse_halo(halo),
        roi=combine(z, roi) if (z or roi) else None,
        key=key,
        overwrite=overwrite,
    )
    typer.echo(f"segment: foreground = {res.foreground}", err=True)
    where = "" if res.offset == (0, 0, 0) else f" at offset {','.join(map(str, res.offset))}"
    typer.echo(f"{res.path}: {res.n_objects} objects, shape {'x'.join(map(str, res.shape))}{where}")
