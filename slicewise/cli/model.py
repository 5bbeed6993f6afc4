"""``slicewise model``: parameters and FLOPs of a saved model or of an encoder configuration.

MODEL arguments (here and in ``slicewise audit``) are a saved model file (``load_model``) or an
encoder spec: a timm encoder name, optionally with ModelConfig fields that override the command's
options, e.g. ``tf_efficientnet_lite0:skips=0111,channel_init=mirror`` (parsed by :mod:`slicewise.models.spec`,
built by :func:`slicewise.models.build.open_model`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Optional

import typer

from slicewise.cli import model_app
from slicewise.config import STRATEGY_CHOICES
from slicewise.errors import InputError
from slicewise.models.spec import check_model_arg, is_model_path

ENCODER_OPTIONS = ("in_slices", "colors", "channel_init", "skips", "classes", "weights", "img_size")
"""Parameter names of the options that only build encoder specs (``model info``, ``audit attribution/shift``)."""


def check_encoder_options(ctx: typer.Context, specs: Sequence[str], names: Sequence[str]) -> None:
    """Refuse options that only build encoder specs (``names``: parameter names such as ``in_slices``) when
    the user typed them but every MODEL in ``specs`` is a saved model file, whose settings are stored in it."""
    if not specs or not all(is_model_path(s) for s in specs):
        return
    given = [
        p
        for p in ctx.command.params
        if p.name in names
        and p.name is not None
        and getattr(ctx.get_parameter_source(p.name), "name", "") in ("COMMANDLINE", "ENVIRONMENT")
    ]
    if given:
        flags = ", ".join("/".join(p.opts) for p in given)
        what = specs[0] if len(specs) == 1 else "every MODEL"
        raise InputError(
            f"{flags} only build encoder specs, but {what} is a saved model file whose settings are stored "
            f"in it: drop {'them' if len(given) > 1 else 'it'} (or give an encoder name, e.g. tf_efficientnet_lite0)"
        )


def _show_encoder_file(path: str, as_json: bool) -> bool:
    """Print the provenance of an encoder file of ``slicewise pretrain``; False for any other file."""
    from slicewise.models.encoder_file import encoder_file_info, read_provenance
    from slicewise.utils import text_table
    from slicewise.utils.environment import environment_text

    if read_provenance(path) is None:
        return False
    info = encoder_file_info(path)
    if as_json:
        typer.echo(json.dumps(info, indent=2, default=str))
        return True
    data = info.get("data") or {}
    raws = data.get("raw", []) if isinstance(data, dict) else []
    volumes = ", ".join(str(r.get("path") or r.get("synthetic") or "?") for r in raws if isinstance(r, dict)) or "?"
    rows = [
        (
            "encoder weights",
            f"{info.get('encoder')} ({info['params']:,} values in {info['tensors']} tensors), slicewise pretrain",
        ),
        (
            "method",
            f"{info.get('method')}, {info.get('steps')} steps, seed {info.get('seed')}, start "
            f"{info.get('start_weights')}",
        ),
        (
            "input",
            f"k={info.get('in_slices')} slices, dz={info.get('dz')}, {info.get('border')} borders, "
            f"{info.get('colors')} color(s), first layer {info.get('channel_init')}",
        ),
        ("data", volumes),
        ("created", f"{info.get('created')} (slicewise {info.get('slicewise_version')})"),
    ]
    env = info.get("environment")
    if isinstance(env, dict):
        rows.append(("environment", environment_text(env)))
    rows.append(
        (
            "use",
            f"model.weights={path} model.encoder={info.get('encoder')} model.in_slices={info.get('in_slices')} "
            f"model.channel_init={info.get('channel_init')}",
        )
    )
    typer.echo("\n".join(text_table(rows, align="ll")))
    return True


@model_app.command("info")
def info_cmd(
    ctx: typer.Context,
    model: str = typer.Argument(
        ...,
        help="a saved model file (.pt from save_model / slicewise train) or an encoder spec, e.g. resnet18:skips=0111",
    ),
    in_slices: int = typer.Option(3, "--in-slices", "-k", help="input slices k (odd); encoder names only"),
    colors: int = typer.Option(1, "--colors", help="color channels per slice: 1 grayscale, 3 RGB; encoder names only"),
    channel_init: str = typer.Option("uniform", "--channel-init", help=f"{STRATEGY_CHOICES}; encoder names only"),
    skips: str = typer.Option("1111", "--skips", help="skip mask, top-down (L1 = stride 2 first); encoder names only"),
    classes: int = typer.Option(2, "--classes", help="segmentation classes; encoder names only"),
    weights: str = typer.Option(
        "random", "--weights", help="weights to build with (counts do not depend on them); encoder names only"
    ),
    img_size: Optional[int] = typer.Option(None, "--img-size", help="ViT build size (SAM: 1024); encoder names only"),
    size: str = typer.Option(
        "256", "--size", help="input tile for the FLOP count: N or HxW (multiples of the size divisor)"
    ),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
) -> None:
    """Parameter counts (encoder / decoder) and forward GFLOPs per image at --size."""
    from slicewise.data.roi import parse_sizes
    from slicewise.utils import text_table

    h, w = parse_sizes(size, 2, "--size", "256 or 512x256 (HxW)")
    check_encoder_options(ctx, [model], ENCODER_OPTIONS)
    check_model_arg(model)
    from slicewise.models.build import model_info, open_model  # torch: after the arguments are checked

    if model.lower().endswith(".safetensors") and _show_encoder_file(model, as_json):
        return
    net = open_model(
        model,
        weights=weights,
        in_slices=in_slices,
        colors=colors,
        channel_init=channel_init,
        skips=skips,
        classes=classes,
        img_size=img_size,
    )
    info = model_info(net, (h, w))
    if getattr(net, "package", None):  # a bioimage.io package exported by slicewise
        info["package"] = net.package
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    rows = [
        ("encoder", info["encoder"]),
        ("input", f"k={info['in_slices']} ({info['in_channels']} channels), {h}x{w}"),
        ("outputs", ", ".join(f"{n} {a}:{b}" for n, (a, b) in info["heads"].items())),
        ("skips", f"{info['skips']} (live at strides {', '.join(map(str, info['live_skip_strides'])) or 'none'})"),
        ("size divisor", str(info["size_divisor"])),
        ("parameters", f"{info['params']:,} (encoder {info['encoder_params']:,}, decoder {info['decoder_params']:,})"),
        ("forward", f"{info['gflops']:.2f} GFLOP / image"),
    ]
    if "package" in info:
        pkg = info["package"]
        rows.insert(
            0,
            (
                "bioimage.io package",
                f"{pkg['name']} (format {pkg['format_version']}; stacks with dz={pkg['dz']}, {pkg['border']} borders)",
            ),
        )
    typer.echo("\n".join(text_table(rows, align="ll")))
