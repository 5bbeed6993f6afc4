"""``slicewise audit``: first-layer weights, attribution by input slice, layer domain susceptibility.

MODEL arguments are a saved model file (``load_model``) or an encoder spec
(:func:`slicewise.models.build.open_model`): a timm encoder name, optionally with ModelConfig fields,
``tf_efficientnet_lite0:skips=0111,channel_init=mirror``; a spec builds the pretrained network
(decoder at initialization, seeded with ``--seed``; the report says so). Tables print 4 significant
digits (:func:`slicewise.utils.table.num`); the JSON holds 6. Models are named by ``--name``, else by
their run folder (``runs/uniform/best.pt`` → ``uniform``), in titles, legends and tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np
import typer

from slicewise.cli import audit_app
from slicewise.cli.model import check_encoder_options
from slicewise.config import STRATEGY_CHOICES
from slicewise.errors import InputError
from slicewise.models.spec import check_model_arg, is_model_path

#: options that only build encoder specs: refused when every MODEL is a saved model file
ENCODER_ONLY = ("weights", "in_slices", "channel_init")


def _check_args(
    json_out: Path | None,
    report: Path | None,
    overwrite: bool,
    data: tuple[str, str | None] | None = None,
    inputs: tuple[str, ...] = (),
    **counts: int | None,
) -> None:
    """Before any work: outputs creatable and writable (not under a file, not read-only, not existing
    without --overwrite, not of another kind: a folder for --json, a folder other than a report for
    --report), neither an input (``inputs``: model files, data, region) nor each other, counts positive
    (``--tiles``, ``--tile``, ``--bins``, ``--steps``, ``--dz``, ``--batch-size``), ``--seed`` non-negative,
    and ``data`` (path, key) passing the one intensity rule (:func:`slicewise.data.io.check_raw`: dtype, NaN/Inf,
    float in [0, 1], integers other than bool/uint8/uint16 non-negative and using their range); one-line
    :class:`InputError` otherwise."""
    from slicewise.data.io import check_raw, open_volume
    from slicewise.data.io.outputs import check_output_path

    for name, value in counts.items():
        flag = "--" + name.replace("_", "-")
        if value is not None and value < (0 if name == "seed" else 1):
            raise InputError(f"{flag} {value}: must be {'>= 0' if name == 'seed' else 'at least 1'}")
    if json_out is not None and report is not None:
        j, r = Path(json_out).absolute(), Path(report).absolute()
        if j == r or r in j.parents:
            raise InputError(
                f"--json {json_out} is --report {report} or inside it (replaced as a whole): choose another --json path"
            )
    if json_out is not None:
        check_output_path(json_out, overwrite=overwrite, inputs=inputs, kind="file")
    if report is not None:
        check_output_path(report, overwrite=overwrite, inputs=inputs, kind="report")
    if data is not None:
        with open_volume(data[0], key=data[1]) as vol:
            check_raw(vol)


def _environment(device: str | None = None, seed: int | None = None) -> dict[str, Any]:
    """The computing environment of an audit (versions, threads, the device it ran on, seed) for its JSON and report."""
    from slicewise.utils.device import resolve_device
    from slicewise.utils.environment import environment_info

    return environment_info(resolve_device(device), seed)


def _write_json(data: Any, path: Path, overwrite: bool, environment: dict[str, Any]) -> None:
    from slicewise.diagnostics.report import jsonable
    from slicewise.utils.atomic import write_json

    write_json(path, jsonable({**data, "environment": environment}), overwrite=overwrite, indent=1)
    typer.echo(f"wrote {path}")


def _write_report(report: Path, environment: dict[str, Any], **kwargs: Any) -> None:
    """:func:`slicewise.diagnostics.write_report` and one stdout line naming the page it wrote."""
    from slicewise.diagnostics.report import write_report

    folder = write_report(report, environment=environment, **kwargs)
    typer.echo(f"wrote report {folder / 'index.html'}")


def _range(z: str | None, roi: str | None) -> Any:
    """``--z`` / ``--roi`` as (z, y, x) slices, or None for the whole volume."""
    from slicewise.data.roi import combine

    return combine(z, roi) if (z or roi) else None


OPTS = dict(
    weights=typer.Option(
        "imagenet", "--weights", help="encoder weights for encoder specs (imagenet, random, a registry name or a file)"
    ),
    in_slices=typer.Option(3, "--in-slices", "-k", help="input slices k (odd) for encoder specs"),
    channel_init=typer.Option(
        "uniform", "--channel-init", help=f"first-layer strategy for encoder specs: {STRATEGY_CHOICES}"
    ),
    key=typer.Option(None, "--key", help="dataset inside an HDF5 / Zarr container"),
    dz=typer.Option(1, "--dz", help="z-step between stacked slices"),
    device=typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1, ..."),
    batch_size=typer.Option(16, "--batch-size", help="tiles per device batch"),
    json_out=typer.Option(None, "--json", help="write the numbers to this JSON file"),
    report=typer.Option(None, "--report", help="write an HTML report (index.html, PNGs, report.json) to this folder"),
    z=typer.Option(
        None, "--z", help="draw tiles centered on slices START:STOP only (half-open); stacks still read context outside"
    ),
    roi=typer.Option(
        None, "--roi", help="draw tiles inside the box z0:z1,y0:y1,x0:x1 only; stacks still read context outside"
    ),
    overwrite=typer.Option(False, "--overwrite", help="replace existing --json / --report outputs"),
    name=typer.Option(
        None,
        "--name",
        help="name of the model in titles, legends and tables (default: its run folder, runs/uniform/best.pt -> "
        "uniform)",
    ),
)
"""Options shared by the audit commands (one help text each)."""


@audit_app.command("weights")
def weights_cmd(
    encoder: str = typer.Argument(..., help="timm encoder name, e.g. tf_efficientnet_lite0"),
    weights: str = typer.Option("imagenet", "--weights", help="imagenet, random, a registry name or a checkpoint file"),
    in_slices: int = typer.Option(3, "--in-slices", "-k", help="input slices k (odd)"),
    channel_init: str = typer.Option("rgb", "--channel-init", help=STRATEGY_CHOICES),
    img_size: Optional[int] = typer.Option(None, "--img-size", help="ViT build size (SAM: 1024)"),
    json_out: Optional[Path] = OPTS["json_out"],
    report: Optional[Path] = OPTS["report"],
    overwrite: bool = OPTS["overwrite"],
    name: Optional[str] = typer.Option(
        None, "--name", help="name in the report title and legend (default: ENCODER (channel init))"
    ),
) -> None:
    """Per-slice shares of the adapted first-layer weights (L1), mirror asymmetry, centre share."""
    if is_model_path(encoder):  # answered before timm is imported: ENCODER is a name, files go to --weights
        raise InputError(
            f"unknown encoder {encoder!r}: it looks like a file path, but an encoder name is expected here "
            f"(a timm model name, e.g. tf_efficientnet_lite0); give a checkpoint or encoder file as --weights FILE"
        )
    _check_args(json_out, report, overwrite, inputs=(weights,), in_slices=in_slices, img_size=img_size)
    from slicewise.diagnostics.report import jsonable
    from slicewise.diagnostics.weights_audit import audit_weights, format_weights_audit

    result = jsonable(audit_weights(encoder, weights, in_slices, channel_init, img_size))
    typer.echo(format_weights_audit(result))
    env = _environment("cpu")
    if json_out is not None:
        _write_json(result, json_out, overwrite, env)
    if report is not None:
        label = name or f"{encoder} ({channel_init})"
        _write_report(
            report, env, weights={label: result}, title=f"slicewise audit: first layer of {label}", overwrite=overwrite
        )


@audit_app.command("attribution")
def attribution_cmd(
    ctx: typer.Context,
    model: str = typer.Argument(..., help="a saved model file or an encoder spec (builds the pretrained network)"),
    data: str = typer.Argument(..., help="volume file (TIFF, PNG folder, HDF5, Zarr)"),
    key: Optional[str] = OPTS["key"],
    method: str = typer.Option(
        "saliency", "--method", help="saliency (|dT/dx|), ixg (|x * dT/dx|) or ig (integrated gradients)"
    ),
    target_class: Optional[int] = typer.Option(
        None, "--class", help="class whose logits are summed (default 1; 0 with one class)"
    ),
    region: str = typer.Option(
        "tile", "--region", help="pixels summed: tile, mask (predicted class) or an ROI mask file shaped like DATA"
    ),
    n_tiles: int = typer.Option(32, "--tiles", help="number of random tiles (bootstrap CIs are over tiles)"),
    tile: int = typer.Option(128, "--tile", help="tile size in pixels (a multiple of the model's size divisor)"),
    steps: int = typer.Option(32, "--steps", help="integrated-gradients steps"),
    dz: int = OPTS["dz"],
    seed: int = typer.Option(0, "--seed", help="seed for tiles, bootstrap and decoder init"),
    pretrained: bool = typer.Option(
        False, "--pretrained", help="also audit the pretrained network MODEL started from, side by side"
    ),
    device: str = OPTS["device"],
    batch_size: int = OPTS["batch_size"],
    weights: str = OPTS["weights"],
    in_slices: int = OPTS["in_slices"],
    channel_init: str = OPTS["channel_init"],
    json_out: Optional[Path] = OPTS["json_out"],
    report: Optional[Path] = OPTS["report"],
    overwrite: bool = OPTS["overwrite"],
    z: Optional[str] = OPTS["z"],
    roi: Optional[str] = OPTS["roi"],
    name: Optional[str] = OPTS["name"],
) -> None:
    """Share of each input slice in the attribution of the class logits, with 95% bootstrap CIs."""
    _check_args(
        json_out,
        report,
        overwrite,
        data=(data, key),
        inputs=(model, data, region, weights),
        tiles=n_tiles,
        tile=tile,
        steps=steps,
        dz=dz,
        seed=seed,
        batch_size=batch_size,
        in_slices=in_slices,
    )
    check_encoder_options(ctx, [model], ENCODER_ONLY)
    check_model_arg(model)  # before torch is imported
    from slicewise.data.io import open_volume
    from slicewise.diagnostics import compare_models
    from slicewise.diagnostics.attribution import REGIONS
    from slicewise.diagnostics.audit_models import attribution_models
    from slicewise.diagnostics.report import format_attribution

    audited = attribution_models(
        model,
        seed=seed,
        pretrained=pretrained,
        name=name,
        weights=weights,
        in_slices=in_slices,
        channel_init=channel_init,
    )
    models = audited.models
    vol = open_volume(data, key=key)
    mask: Any = region
    if region not in REGIONS:
        mask = np.asarray(open_volume(region)[:])
    result = compare_models(
        models,
        vol,
        method=method,
        target_class=target_class,
        region=mask,
        n_tiles=n_tiles,
        tile=tile,
        dz=dz,
        seed=seed,
        device=device,
        n_steps=steps,
        batch_size=batch_size,
        roi=_range(z, roi),
    )
    typer.echo(format_attribution(result))
    env = _environment(device, seed)
    if json_out is not None:
        _write_json(result, json_out, overwrite, env)
    if report is not None:
        what = f"{audited.name} (pretrained vs fine-tuned)" if len(models) > 1 else audited.name
        _write_report(
            report,
            env,
            attribution=result,
            weights=audited.weights_audit(),  # the pretrained first layer, where that network was built anyway
            model_notes=audited.notes,
            title=f"slicewise audit: attribution of {what} on {Path(data).name}",
            overwrite=overwrite,
        )


@audit_app.command("shift")
def shift_cmd(
    ctx: typer.Context,
    paths: list[str] = typer.Argument(
        ..., help="MODEL [MODEL2 ...] DATA: saved model files or encoder specs, then the volume"
    ),
    shift: list[str] = typer.Option(
        ...,
        "--shift",
        help="name=strength, repeatable: brightness, contrast, gamma, gaussian_noise, gaussian_blur, saturation, hue",
    ),
    key: Optional[str] = OPTS["key"],
    n_tiles: int = typer.Option(32, "--tiles", help="number of random tiles"),
    tile: int = typer.Option(128, "--tile", help="tile size in pixels"),
    dz: int = OPTS["dz"],
    seed: int = typer.Option(0, "--seed", help="seed for tiles, range sample, noise and decoder init"),
    bins: int = typer.Option(64, "--bins", help="histogram bins per channel"),
    device: str = OPTS["device"],
    batch_size: int = OPTS["batch_size"],
    weights: str = OPTS["weights"],
    in_slices: int = OPTS["in_slices"],
    channel_init: str = OPTS["channel_init"],
    json_out: Optional[Path] = OPTS["json_out"],
    report: Optional[Path] = OPTS["report"],
    overwrite: bool = OPTS["overwrite"],
    z: Optional[str] = OPTS["z"],
    roi: Optional[str] = OPTS["roi"],
    names: Optional[list[str]] = typer.Option(
        None,
        "--name",
        help="model name in titles and legends, once per MODEL in order (default: each run "
        "folder, runs/uniform/best.pt -> uniform)",
    ),
) -> None:
    """Per-layer Hellinger distance between activations on DATA and on DATA under each --shift."""
    _check_args(
        json_out,
        report,
        overwrite,
        data=(paths[-1], key) if len(paths) > 1 else None,
        inputs=(*paths, weights),
        tiles=n_tiles,
        tile=tile,
        bins=bins,
        dz=dz,
        seed=seed,
        batch_size=batch_size,
        in_slices=in_slices,
    )
    check_encoder_options(ctx, paths[:-1], ENCODER_ONLY)
    for spec in paths[:-1]:
        check_model_arg(spec)  # before torch is imported
    from slicewise.data.io import open_volume
    from slicewise.diagnostics import shift_report
    from slicewise.diagnostics.audit_models import shift_models
    from slicewise.diagnostics.report import format_shift

    if len(paths) < 2:
        raise InputError(
            "give at least one MODEL and then DATA, e.g. slicewise audit shift model.pt volume.tif --shift contrast=0.5"
        )
    if names and len(names) != len(paths) - 1:
        raise InputError(f"{len(names)} --name for {len(paths) - 1} models: give one --name per MODEL, in order")
    audited = shift_models(
        paths[:-1], seed=seed, names=names, weights=weights, in_slices=in_slices, channel_init=channel_init
    )
    models = audited.models
    vol = open_volume(paths[-1], key=key)
    result = shift_report(
        models,
        vol,
        shift,
        n_tiles=n_tiles,
        tile=tile,
        dz=dz,
        seed=seed,
        device=device,
        batch_size=batch_size,
        bins=bins,
        roi=_range(z, roi),
    )
    typer.echo(format_shift(result))
    env = _environment(device, seed)
    if json_out is not None:
        _write_json(result, json_out, overwrite, env)
    if report is not None:
        _write_report(
            report,
            env,
            shift=result,
            overwrite=overwrite,
            model_notes=audited.notes,
            title=f"slicewise audit: domain shift of {', '.join(models)} on {Path(paths[-1]).name}",
        )
