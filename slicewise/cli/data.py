"""``slicewise data``: list the dataset registry, fetch/convert a dataset, inspect any volume file."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from slicewise.cli import data_app


@data_app.command("list")
def list_cmd() -> None:
    """Table of the registered datasets: name, modality, task, size, licence."""
    from slicewise.data.registry import list_datasets
    from slicewise.utils import text_table

    rows = [
        (
            e["name"],
            str(e.get("modality", "")),
            str(e.get("task", "")),
            str(e.get("size", "")),
            _short(str(e.get("licence", ""))) + (" [manual download]" if e.get("manual") else ""),
        )
        for e in list_datasets()
    ]
    header = ("name", "modality", "task", "size", "licence")
    typer.echo("\n".join(text_table([header, *rows], align="lllll")))


def _short(text: str) -> str:
    """First clause of a licence text (up to ';' or '('), for the table."""
    return text.split(";")[0].split(" (")[0].strip()


@data_app.command("fetch")
def fetch_cmd(
    name: str = typer.Argument(..., help="dataset name (see `slicewise data list`)"),
    dest: Optional[Path] = typer.Option(
        None,
        "--dest",
        help="output root; the dataset goes to DEST/NAME "
        "(default: $SLICEWISE_CACHE/datasets or ~/.cache/slicewise/datasets)",
    ),
    source: Optional[Path] = typer.Option(
        None, "--from", help="convert an already-downloaded file, archive or folder instead of downloading"
    ),
    cache_dir: Optional[Path] = typer.Option(
        None, "--cache-dir", help="download cache (default $SLICEWISE_CACHE or ~/.cache/slicewise)"
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing converted dataset"),
) -> None:
    """Download a dataset (checksum-verified when known) and convert it to DEST/NAME/{split}/{raw,labels}.tif."""
    from slicewise.data.registry import fetch

    out = fetch(name, dest=dest, cache_dir=cache_dir, source=source, overwrite=overwrite)
    typer.echo(str(out))


@data_app.command("info")
def info_cmd(
    path: str = typer.Argument(
        ..., help="volume file: TIFF, PNG, image folder, HDF5 (file.h5:key), Zarr, OME-Zarr (img.zarr:LEVEL)"
    ),
    key: Optional[str] = typer.Option(None, "--key", help="HDF5 dataset / Zarr array inside the file"),
) -> None:
    """Shape, dtype, value range (NaN/Inf counted, never hidden), voxel size and a label summary of a volume file."""
    from slicewise.data.io import open_volume, summarize_volume
    from slicewise.utils import text_table

    with open_volume(path, key=key) as vol:
        s = summarize_volume(vol)
    nonfinite = s["nan"] + s["posinf"] + s["neginf"]
    vs = "unknown" if s["voxel_size"] is None else " x ".join(f"{v:g}" for v in s["voxel_size"]) + " nm (z, y, x)"
    lines = [
        ("source", s["source"]),
        ("shape", str(tuple(s["shape"])) + ("  (Z, Y, X, C)" if s["channels"] else "  (Z, Y, X)")),
        ("dtype", s["dtype"]),
        ("range", f"{s['min']} .. {s['max']}" + (" (finite values)" if nonfinite else "")),
        *(
            [
                (
                    "non-finite",
                    f"{s['nan']} NaN, {s['posinf']} +Inf, {s['neginf']} -Inf: replace or mask them "
                    f"before training or prediction",
                )
            ]
            if nonfinite
            else []
        ),
        ("voxel size", vs),
        ("distinct values", "n/a (non-integer values)" if s["distinct_values"] is None else str(s["distinct_values"])),
        ("looks like", s["looks_like"] + (f" {s['values']}" if s["values"] is not None else "")),
    ]
    lines += _ngff_lines(s["source"])
    typer.echo("\n".join(text_table([(k + ":", v) for k, v in lines], align="ll")))


def _ngff_lines(source: str) -> list[tuple[str, str]]:
    """``level N`` rows (shape, axes, voxel size; ``*`` = the level shown above) and channel names of an OME-Zarr."""
    from slicewise.data.io.ngff import channel_names, is_ome_zarr, levels

    root, _, opened = source.rpartition(":")
    if not root or not is_ome_zarr(root):
        return []
    rows = []
    for i, lv in enumerate(levels(root)):
        vs = "" if lv["voxel_size"] is None else ", " + " x ".join(f"{v:g}" for v in lv["voxel_size"]) + " nm"
        mark = "*" if lv["path"] == opened else ""
        rows.append((f"level {i}", f"{lv['path']}{mark}: {lv['shape']} ({lv['axes']}){vs}"))
    names = channel_names(root)
    return rows + ([("channels", ", ".join(names))] if names else [])
