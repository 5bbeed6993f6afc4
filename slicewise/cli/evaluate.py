"""CLI command ``slicewise evaluate PRED GT``: score a label map against ground truth, block by block.

``--z`` / ``--roi`` select a box of both maps in ground-truth coordinates (held-out slices without
cutting files); a prediction that records an ``offset`` (``slicewise segment --roi``) is placed there.
``--label-map`` (ground truth) and ``--pred-label-map`` (prediction) map raw values to classes with
training's ``data.label_map`` syntax (``0:1,255:0``); a semantic score whose two label sets share no
value warns in one line on stderr. ``--components gt|pred|both`` labels connected non-zero regions per
slice of the named side(s) first (after its label map), so watershed instances given as PRED stay as
they are with ``--components gt``.
``--dask`` counts blocks in parallel: ``threads`` (this process, dask's threaded scheduler),
``local:N`` (a LocalCluster of N worker processes) or ``tcp://host:port`` (a running scheduler).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from slicewise.cli import app


@app.command("evaluate")
def evaluate_cmd(
    pred: Path = typer.Argument(..., help="Predicted label map (TIFF, PNG folder, HDF5 file.h5:key, Zarr)."),
    gt: Path = typer.Argument(..., help="Ground-truth label map of the same shape."),
    kind: str = typer.Option(
        "semantic", "--kind", help="semantic (per-class Dice/IoU) or instance (ARE, VOI, AP, seg accuracy)."
    ),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the full result as JSON here."),
    per_slice: bool = typer.Option(False, "--per-slice", help="Also score each z-slice alone (2-D objects)."),
    prob: Optional[Path] = typer.Option(
        None, "--prob", help="Probability map scoring instances for AP (default: instance size)."
    ),
    classes: Optional[str] = typer.Option(
        None, "--classes", help="Comma-separated semantic classes to score, e.g. 0,255."
    ),
    key: Optional[str] = typer.Option(None, "--key", help="Dataset key inside HDF5 / Zarr files."),
    keep_gt_zero: bool = typer.Option(
        False, "--keep-gt-zero", help="Count ground-truth 0 voxels in ARE/VOI (default: ignored)."
    ),
    label_map: Optional[str] = typer.Option(
        None,
        "--label-map",
        help="Map ground-truth values to classes as training's data.label_map: RAW:CLASS pairs, e.g. 0:1,255:0.",
    ),
    pred_label_map: Optional[str] = typer.Option(
        None, "--pred-label-map", help="Map predicted values to classes the same way (predict's labels need none)."
    ),
    class_names: Optional[str] = typer.Option(
        None,
        "--class-names",
        help="Names of classes 0,1,... for the table, e.g. background,membrane "
        "(default: those a `slicewise predict` label store records).",
    ),
    components: str = typer.Option(
        "none",
        "--components",
        help="Label connected non-zero regions per slice first (membrane maps such as ISBI 2012: "
        "0 = membrane) in: gt, pred, both or none. Use gt for watershed instances from "
        "`slicewise segment`, so they are not re-merged.",
    ),
    fill: bool = typer.Option(
        False, "--fill", help="With --components pred/both: give predicted membrane voxels the id of the nearest cell."
    ),
    z: Optional[str] = typer.Option(
        None, "--z", help="Score slices START:STOP only (half-open, ground-truth coordinates)."
    ),
    roi: Optional[str] = typer.Option(
        None, "--roi", help="Score the box z0:z1,y0:y1,x0:x1 only (ground-truth coordinates)."
    ),
    block: Optional[str] = typer.Option(
        None, "--block", help="Block Z,Y,X read at a time (default 8,1024,1024); results do not depend on it."
    ),
    dask: Optional[str] = typer.Option(
        None, "--dask", help="Count blocks in parallel: threads, local:N or tcp://host:port."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --json file."),
) -> None:
    """Print a metrics table for PRED against GT (and write it as JSON with --json)."""
    from slicewise.data.io.outputs import check_output_path
    from slicewise.data.labelmap import parse_label_map
    from slicewise.data.roi import combine, parse_block
    from slicewise.errors import InputError
    from slicewise.metrics import evaluate, format_table
    from slicewise.utils import write_json
    from slicewise.utils.environment import environment_info

    if json_out is not None:
        check_output_path(json_out, overwrite=overwrite, inputs=(pred, gt, prob), kind="file")
    class_list = None
    if classes is not None:
        try:
            class_list = [int(c) for c in classes.split(",") if c.strip()]
        except ValueError as err:
            raise InputError(f"--classes {classes!r} must be comma-separated integers, e.g. 0,1,2") from err
    result = evaluate(
        pred,
        gt,
        kind=kind,
        classes=class_list,
        prob=prob,
        per_slice=per_slice,
        ignore_gt_zero=not keep_gt_zero,
        key=key,
        roi=combine(z, roi) if (z or roi) else None,
        block=parse_block(block),
        dask=dask,
        label_map=parse_label_map(label_map, "--label-map"),
        pred_label_map=parse_label_map(pred_label_map, "--pred-label-map"),
        class_names=[n.strip() for n in class_names.split(",")] if class_names else None,
        components=components,
        fill=fill,
    )
    typer.echo(format_table(result))
    if json_out is not None:
        write_json(json_out, {**result, "environment": environment_info()}, overwrite=overwrite)
        typer.echo(f"wrote {json_out}")
