"""``train()``: one fine-tuning run on PyTorch Lightning.

Run folder (``out``; default ``runs/train-<UTC time>``)::

    config.yaml              the resolved TrainConfig: ``slicewise train out/config.yaml`` repeats the run
    checkpoints/last.ckpt    Lightning checkpoint after the latest validation interval (``--resume`` uses it)
    checkpoints/best.ckpt    Lightning checkpoint with the highest ``val/dice``
    best.pt, last.pt         slicewise model files (``save_model``) of those weights: ``slicewise predict`` input
    logs/version_<n>/metrics.csv   training curve (``train/loss`` …, ``val/dice`` …); one version per (re)start
    logs/tensorboard/        TensorBoard events when ``trainer.tensorboard: true``

Every checkpoint is written through ``atomic_path`` (temp sibling + rename; :class:`AtomicCheckpointIO`),
so a crash never leaves a truncated ``last.ckpt``. Validation and checkpoints happen every
``trainer.val_every`` optimizer steps and at the end.

Determinism: ``seed_everything(seed, workers=True)`` before the model is built; training patch ``i``
is a pure function of ``(seed, i)``; the torch RNG is reseeded from ``(seed, step, rank)`` at every
step. A run resumed from ``last.ckpt`` therefore ends with the weights of an uninterrupted run
(bit-identical on CPU; on GPU up to non-deterministic kernels unless ``trainer.deterministic``).

Devices and DDP (all Lightning): ``trainer.accelerator`` / ``devices`` / ``num_nodes`` /
``strategy`` go to ``pytorch_lightning.Trainer``; ``precision: auto`` means ``bf16-mixed`` on CUDA
and 32-bit on CPU. Launch multi-GPU runs in one of these ways:

- one node, Lightning spawns the processes: ``slicewise train cfg.yaml trainer.devices=4 trainer.strategy=ddp``;
- torchrun: ``torchrun --nproc_per_node=4 --nnodes=2 --node_rank=$R --master_addr=$HOST -m slicewise.cli
  train cfg.yaml trainer.devices=4 trainer.num_nodes=2 trainer.strategy=ddp`` (Lightning reads
  the torchrun environment);
- SLURM: ``srun slicewise train cfg.yaml trainer.devices=4 trainer.num_nodes=2 trainer.strategy=ddp``
  with ``--ntasks-per-node=4`` (Lightning detects SLURM).

Each rank draws its own patches (rank q of W takes samples ``(s·W + q)·B …`` at step s), so the
effective batch size is ``W · data.batch_size``. Give every rank the same ``--out`` (shared file
system); rank 0 writes the config, checkpoints, logs and model files.
"""

from __future__ import annotations

import copy
import logging
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.callbacks import ModelCheckpoint, TQDMProgressBar
from pytorch_lightning.loggers import CSVLogger

from slicewise.config import TrainConfig, deep_merge, load_config, parse_overrides, save_config, validate
from slicewise.errors import ConfigError, InputError
from slicewise.utils.atomic import atomic_path

CONFIG_NAME = "config.yaml"
CKPT_DIR = "checkpoints"
BEST_MODEL, LAST_MODEL = "best.pt", "last.pt"
MONITOR = "val/dice"
_OUT_ENV = "_SLICEWISE_DEFAULT_OUT"
# Lightning notices that say nothing to a slicewise user (resuming into the run's own folder etc.)
_EXPECTED_WARNINGS = (r".*Checkpoint directory .* exists and is not empty", r".*isinstance\(treespec, LeafSpec\)",
                      r".*smaller than the logging interval")  # logging counts global steps, not loader epochs


@dataclass
class TrainResult:
    """What a run produced: paths in the run folder and the final metrics (plain floats)."""

    out_dir: Path
    config: TrainConfig
    last_checkpoint: Path
    best_checkpoint: Path | None
    last_model: Path
    best_model: Path
    metrics: dict[str, float] = field(default_factory=dict)
    best_score: float | None = None
    metrics_csv: Path | None = None


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint IO that writes through :func:`slicewise.utils.atomic_path`."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)


def resolve_config(config: TrainConfig | dict[str, Any] | str | os.PathLike | None = None,
                   overrides: list[str] | None = None) -> TrainConfig:
    """A :class:`TrainConfig` from an object, a dict or a YAML path, with ``key=value`` overrides."""
    if config is None or isinstance(config, (str, os.PathLike)):
        return load_config(TrainConfig, config, overrides)
    if isinstance(config, TrainConfig):
        config = config.model_dump(mode="json")
    if not isinstance(config, dict):
        raise ConfigError(f"config must be a TrainConfig, a dict or a YAML path, not {type(config).__name__}")
    return validate(TrainConfig, deep_merge(config, parse_overrides(overrides)))


def _precision(cfg: TrainConfig) -> str:
    p = cfg.trainer.precision
    if p != "auto":
        return "32-true" if p == "32" else p
    gpu = torch.cuda.is_available() and cfg.trainer.accelerator in ("auto", "gpu", "cuda")
    return "bf16-mixed" if gpu else "32-true"


def _default_out() -> Path:
    """``runs/train-<UTC time>[-n]``, the same for the processes Lightning spawns for DDP (they
    inherit it through the environment); torchrun / SLURM launches must pass ``--out``."""
    if int(os.environ.get("LOCAL_RANK", "0")) > 0 and _OUT_ENV in os.environ:
        return Path(os.environ[_OUT_ENV])
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 or int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        raise InputError("multi-process launches (torchrun, SLURM) need a run folder shared by all ranks: pass --out DIR")
    base = Path("runs") / time.strftime("train-%Y%m%d-%H%M%S", time.gmtime())
    p, n = base, 1
    while p.exists():
        n += 1
        p = base.with_name(f"{base.name}-{n}")
    os.environ[_OUT_ENV] = str(p)
    return p


def _out_dir(out: str | os.PathLike | None, resume: bool) -> Path:
    if out is None:
        if resume:
            raise InputError("--resume needs the run folder: pass --out DIR (out=...) of the interrupted run")
        return _default_out()
    p = Path(out)
    last = p / CKPT_DIR / "last.ckpt"
    if resume and not last.is_file():
        raise InputError(f"cannot resume: {last} does not exist; start a new run without --resume")
    if not resume and (p / CKPT_DIR).exists():
        raise InputError(f"{p} already holds a training run: pass --resume to continue it or choose another --out")
    return p


def _trainer(cfg: TrainConfig, out: Path, callbacks: list[pl.Callback], has_val: bool) -> tuple[pl.Trainer, ModelCheckpoint]:
    """The Lightning Trainer of a run; Lightning's start-up notices (devices found, logger tips) are
    silenced: warnings still show."""
    logging.getLogger("pytorch_lightning.utilities.rank_zero").setLevel(logging.WARNING)
    tc = cfg.trainer
    # two callbacks: Lightning 2.6 writes save_last only when the top-k one saved in that step
    last = ModelCheckpoint(dirpath=out / CKPT_DIR, filename="last", monitor=None, save_top_k=1, enable_version_counter=False,
                           save_on_train_epoch_end=not has_val)
    ckpt = ModelCheckpoint(dirpath=out / CKPT_DIR, filename="best", monitor=MONITOR, mode="max", save_top_k=1,
                           enable_version_counter=False, auto_insert_metric_name=False, save_on_train_epoch_end=False) if has_val else last
    show = not os.environ.get("SLICEWISE_NO_PROGRESS")
    cbs: list[pl.Callback] = [last, *([ckpt] if has_val else []), *callbacks]
    if show:
        cbs.append(TQDMProgressBar(refresh_rate=tc.log_every))
    loggers: list[Any] = [CSVLogger(out, name="logs")]
    if tc.tensorboard:
        import importlib.util

        from pytorch_lightning.loggers import TensorBoardLogger

        if not any(importlib.util.find_spec(m) for m in ("tensorboard", "tensorboardX")):
            raise ConfigError("trainer.tensorboard needs the tensorboard package: pip install tensorboard, or set trainer.tensorboard=false")

        loggers.append(TensorBoardLogger(out / "logs", name="tensorboard"))
    trainer = pl.Trainer(
        max_steps=tc.max_steps, max_epochs=-1, accelerator=tc.accelerator, devices=tc.devices, num_nodes=tc.num_nodes,
        strategy=tc.strategy, precision=_precision(cfg), deterministic=tc.deterministic, callbacks=cbs, logger=loggers,
        log_every_n_steps=tc.log_every, check_val_every_n_epoch=1, reload_dataloaders_every_n_epochs=1, limit_val_batches=1.0 if has_val else 0,
        num_sanity_val_steps=0, use_distributed_sampler=False, gradient_clip_val=cfg.optim.grad_clip,
        enable_progress_bar=show, enable_model_summary=False, default_root_dir=out, plugins=[AtomicCheckpointIO()],
    )
    return trainer, ckpt


def _export(module: Any, ckpt: ModelCheckpoint, out: Path) -> None:
    """Write best.pt / last.pt (slicewise model files) from the trained module and the best checkpoint."""
    from slicewise.models import save_model

    model = module.model
    save_model(model, out / LAST_MODEL)
    best_path = ckpt.best_model_path
    if best_path and Path(best_path).is_file():
        state = torch.load(best_path, map_location="cpu", weights_only=False)["state_dict"]
        best = copy.deepcopy(model).cpu()
        best.load_state_dict({k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")})
        save_model(best, out / BEST_MODEL)
    else:
        save_model(model, out / BEST_MODEL)


def train(
    config: TrainConfig | dict[str, Any] | str | os.PathLike | None = None,
    overrides: list[str] | None = None,
    out: str | os.PathLike | None = None,
    resume: bool = False,
    callbacks: list[pl.Callback] | None = None,
) -> TrainResult:
    """Fine-tune a segmentation model; see the module docstring for the run folder and DDP.

    ``config``: a :class:`TrainConfig`, a dict, a YAML path or ``None`` (defaults: the synthetic
    phantom); ``overrides``: ``["optim.lr=3e-4", ...]``; ``resume``: continue the run in ``out``
    from ``checkpoints/last.ckpt`` (without ``config`` the run's own ``config.yaml`` is used);
    ``callbacks``: extra Lightning callbacks.
    """
    from slicewise.models import build_model
    from slicewise.train.datamodule import SliceDataModule
    from slicewise.train.module import SegmentationModule

    out_dir = _out_dir(out, resume)
    if resume and config is None:
        config = out_dir / CONFIG_NAME
    cfg = resolve_config(config, overrides)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    has_val = cfg.data.val_fraction > 0 or cfg.data.val_range is not None
    trainer, ckpt = _trainer(cfg, out_dir, list(callbacks or []), has_val=has_val)
    data = SliceDataModule(cfg, world_size=trainer.world_size)
    data.setup("fit")
    model = build_model(cfg.model)
    sample = data.train_set[0]["image"]
    if sample.shape[0] != model.in_channels:
        raise ConfigError(f"the data give {sample.shape[0]} input channels per stack but the model takes {model.in_channels}: "
                          f"match model.in_slices (and colour channels) to the data")
    model.check_input_size(*cfg.data.patch_size)
    module = SegmentationModule(model, cfg)
    if trainer.is_global_zero:
        save_config(cfg, out_dir / CONFIG_NAME)
    with warnings.catch_warnings():
        for pattern in _EXPECTED_WARNINGS:
            warnings.filterwarnings("ignore", message=pattern)
        trainer.fit(module, datamodule=data, ckpt_path=out_dir / CKPT_DIR / "last.ckpt" if resume else None)
    if trainer.is_global_zero:
        _export(module, ckpt, out_dir)
    trainer.strategy.barrier("slicewise-export")
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if torch.is_tensor(v) and v.numel() == 1}
    best = ckpt.best_model_score
    csv = Path(trainer.loggers[0].log_dir) / "metrics.csv"
    return TrainResult(
        out_dir=out_dir, config=cfg, last_checkpoint=out_dir / CKPT_DIR / "last.ckpt",
        best_checkpoint=Path(ckpt.best_model_path) if ckpt.best_model_path else None,
        last_model=out_dir / LAST_MODEL, best_model=out_dir / BEST_MODEL, metrics=metrics,
        best_score=None if best is None else float(best), metrics_csv=csv if csv.is_file() else None,
    )
