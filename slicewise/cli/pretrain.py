"""``slicewise pretrain RAW [RAW ...] --out DIR [--method M] [--encoder E] [--steps N] [--config YAML]
[key=value ...]``: self-supervised pretraining of an encoder on unlabelled volumes (:func:`slicewise.pretrain`)."""

from __future__ import annotations

from typing import Optional

import typer

from slicewise.cli import app


@app.command("pretrain", context_settings={"allow_extra_args": False})
def pretrain_cmd(
    args: Optional[list[str]] = typer.Argument(
        None,
        help="unlabelled volumes (TIFF, image folder, HDF5/Zarr with data.key=...; none: the synthetic phantom), "
        "then key=value overrides, e.g. data.dz=2 views.z_context=2 model.channel_init=mirror",
    ),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="run folder (default runs/pretrain-<UTC time>)"),
    method: Optional[str] = typer.Option(
        None, "--method", help="mocov2 (default), vicreg, byol or mim (= method.name=...)"
    ),
    encoder: Optional[str] = typer.Option(
        None, "--encoder", help="timm encoder (= model.encoder=...; default tf_efficientnet_lite0)"
    ),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="optimizer steps (= trainer.max_steps=N)"),
    config: Optional[str] = typer.Option(None, "--config", "-c", help="a YAML PretrainConfig; overrides apply on top"),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="continue the run in --out from checkpoints/last.ckpt (refused if the config or a volume changed)",
    ),
    restart: bool = typer.Option(False, "--restart", help="discard the run in --out and start it afresh"),
) -> None:
    """Pretrain an encoder (MoCo v2 / VICReg / BYOL / MIM) on your own volumes; writes encoder.safetensors
    (use it as model.weights=PATH in `slicewise train`), config.yaml, checkpoints/, logs/ and report.html to --out."""
    from slicewise.config import resolve_pretrain_config
    from slicewise.data.io import open_volume
    from slicewise.utils.inputs import check_input_path

    items = list(args or [])
    raw = [a for a in items if "=" not in a]
    overrides = [a for a in items if "=" in a]
    overrides += [f"method.name={method}"] if method else []
    overrides += [f"model.encoder={encoder}"] if encoder else []
    overrides += [f"trainer.max_steps={steps}"] if steps else []
    for path in raw:
        check_input_path(path, what="raw volume")
    if not (resume or restart) or config is not None:  # otherwise the run's own config.yaml is read by the library
        cfg = resolve_pretrain_config(config, overrides, raw or None)  # a typo: one line before the heavy imports
        for path in cfg.data.raw:
            with open_volume(path, key=cfg.data.key):
                pass

    from slicewise.selfsup import pretrain

    result = pretrain(raw or None, out=out, config=config, overrides=overrides, resume=resume, restart=restart)
    knn = result.metrics.get("val/knn")
    typer.echo(f"run folder  {result.out_dir}")
    typer.echo(f"weights     {result.weights}  (model.weights=... in slicewise train)")
    if knn is not None:
        typer.echo(f"k-NN probe  {knn:.4f}")
    if result.report is not None:
        typer.echo(f"report      {result.report}")
