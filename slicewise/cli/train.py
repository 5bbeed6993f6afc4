"""``slicewise train [CONFIG.yaml] [key=value ...] [--out DIR] [--resume]``: fine-tune a model."""

from __future__ import annotations

from typing import Optional

import typer

from slicewise.cli import app


@app.command("train", context_settings={"allow_extra_args": False})
def train_cmd(
    args: Optional[list[str]] = typer.Argument(
        None,
        help="a YAML config file (optional: the default trains on the synthetic phantom) followed by "
        "key=value overrides, e.g. optim.lr=3e-4 trainer.max_steps=500 model.skips=0111",
    ),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="run folder (default runs/train-<UTC time>)"),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="continue the run in --out from checkpoints/last.ckpt (refused if the config or data changed)",
    ),
    restart: bool = typer.Option(
        False,
        "--restart",
        help="discard the run in --out (checkpoints, logs, models) and "
        "start it afresh; a run that completed no checkpoint restarts without it",
    ),
    steps: Optional[int] = typer.Option(
        None,
        "--steps",
        min=1,
        help="optimizer steps (= trainer.max_steps=N); a default "
        "warm-up longer than N becomes N // 10 (as in `slicewise demo`)",
    ),
) -> None:
    """Train a segmentation model; writes config.yaml, checkpoints/, best.pt and last.pt to the run folder.

    data.raw intensities are checked before training: uint8/uint16 (or other non-negative integers reaching
    1/256 of their dtype maximum), or finite float in [0, 1]; anything else is refused with the fix.
    """
    from slicewise.config import TrainConfig, load_config
    from slicewise.data import open_volume
    from slicewise.errors import ConfigError

    items = list(args or [])
    config = items.pop(0) if items and "=" not in items[0] else None
    stray = [a for a in items if "=" not in a]
    if stray:
        raise ConfigError(
            f"unexpected argument(s) {' '.join(stray)}: give one config file first, then key=value overrides"
        )
    if steps is not None:
        items = [*items, f"trainer.max_steps={steps}"]
    if config is not None or not (resume or restart):  # (a resumed run's own config.yaml is read by train())
        data = load_config(TrainConfig, config, items).data  # the file and its keys, before torch and Lightning
        for path, key in (
            (data.raw, data.raw_key),
            (data.labels, data.labels_key),
            (data.instances, data.instances_key),
        ):
            if path is not None:
                open_volume(path, key).close()  # a missing volume or key: one line now, not after the imports
    from slicewise.training import train

    result = train(config, overrides=items, out=out, resume=resume, restart=restart)
    score = "n/a" if result.best_score is None else f"{result.best_score:.4f}"
    typer.echo(f"run folder  {result.out_dir}")
    typer.echo(f"best model  {result.best_model}  (val/dice {score})")
    typer.echo(f"last model  {result.last_model}")
    typer.echo(f"config      {result.out_dir / 'config.yaml'}")
