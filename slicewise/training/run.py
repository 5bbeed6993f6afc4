"""``train()``: one fine-tuning run on PyTorch Lightning.

Run folder (``out``; default ``runs/train-<UTC time>``)::

    config.yaml              the resolved TrainConfig: ``slicewise train out/config.yaml`` repeats the run
    inputs.json              identity of the config and of the data files (checked by ``--resume``), and the
                             computing environment the run began in (``environment``: versions, threads, device)
    checkpoints/last.ckpt    Lightning checkpoint after the latest validation interval (``--resume`` uses it)
    checkpoints/best.ckpt    Lightning checkpoint with the highest ``val/dice``
    best.pt, last.pt         slicewise model files (``save_model``) of those weights: ``slicewise predict`` input
    logs/version_<n>/metrics.csv   training curve (``train/loss`` …, ``val/dice`` …); one version per (re)start
    logs/tensorboard/        TensorBoard events when ``trainer.tensorboard: true``

Every checkpoint is written through ``atomic_path`` (temp sibling + rename; :class:`AtomicCheckpointIO`),
so a crash never leaves a truncated ``last.ckpt``. Validation and checkpoints happen every
``trainer.val_every`` optimizer steps and at the end.

Safety of the run folder (nothing in it is trusted code):

- checkpoints are read with ``torch.load(weights_only=True)`` (:class:`AtomicCheckpointIO`, the
  best-model export), so a replaced ``last.ckpt`` / ``best.ckpt`` cannot run code; paths stored in
  a checkpoint (``best_model_path`` …) are rebased into ``<out>/checkpoints`` (:class:`RunCheckpoint`)
  and the exported best model is always ``<out>/checkpoints/best.ckpt``.
- the run folder is claimed (``claim_output``): a second ``train --out`` on it is refused at its start.
- ownership (:func:`prepare_run_dir`, :mod:`slicewise.utils.ownership`): the folder carries
  ``.slicewise-run.json`` listing every file the run wrote (config, identity, checkpoints, models, its logger
  folders); ``--restart`` / an automatic restart remove only those. A folder holding anything else (a
  ``notes.txt``, a file under ``checkpoints/``, a user's own ``config.yaml``) is refused in one line before
  anything is read or removed, whatever the flags; ``train DIR/config.yaml --out DIR --restart`` reads the
  config before anything is replaced. A run folder from before markers is adopted when it holds only run files
  and ``inputs.json``, a checkpoint or a model.
- SIGTERM / SIGINT (:mod:`slicewise.utils.signals`): the run stops with the last checkpoint in place and the
  CLI names ``--resume``; exit status 143 / 130.
- states: a folder whose run completed nothing yet (no ``last.ckpt``, no model file: a crash or
  kill -9 during the first checkpoint write) is restarted automatically, with or without
  ``--resume``; a folder with a ``last.ckpt`` needs ``--resume`` (continue) or ``--restart``
  (discard checkpoints, logs and models, start afresh); one with the models of a finished run but
  no checkpoint (study cells delete theirs) needs ``--restart``; an unreadable ``last.ckpt`` on
  ``--resume`` is a one-line error naming ``--restart``.
- ``--resume`` refuses, in one line, a config or data that changed since the run began
  (``inputs.json``: the resolved config and ``input_identity`` of raw / labels / instances).
  Settings that only say where the run executes (:data:`RUNTIME_KEYS`) may change.

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

import contextlib
import copy
import importlib.util
import json
import logging
import os
import pickle
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning_fabric.utilities.exceptions import MisconfigurationException
from pydantic import Field
from pytorch_lightning.callbacks import ModelCheckpoint, TQDMProgressBar
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

from slicewise.config import (
    TrainConfig,
    deep_merge,
    load_config,
    parse_overrides,
    read_yaml_mapping,
    save_config,
    validate_with_overrides,
)
from slicewise.data.io import open_volume
from slicewise.data.io.outputs import atomic_path
from slicewise.errors import ConfigError, InputError
from slicewise.models import build_model, save_model
from slicewise.training.datamodule import SliceDataModule
from slicewise.training.module import SegmentationModule
from slicewise.utils.atomic import check_writable_folder, claim_output, write_guard, write_json
from slicewise.utils.device import cap_workers, configure_threads
from slicewise.utils.environment import environment_info
from slicewise.utils.identity import check_identity, input_identity
from slicewise.utils.ownership import check_folder, prepare_run_folder, record, remove_owned, removed_if_refused
from slicewise.utils.progress import lightning_progress, quiet_lightning, status
from slicewise.utils.signals import resume_hint
from slicewise.utils.validation import MetadataModel, parse_metadata

log = logging.getLogger(__name__)
CONFIG_NAME = "config.yaml"
INPUTS_NAME = "inputs.json"
CKPT_DIR = "checkpoints"
BEST_MODEL, LAST_MODEL = "best.pt", "last.pt"
MONITOR = "val/dice"
_OUT_ENV = "_SLICEWISE_DEFAULT_OUT"
# config keys that say where a run executes, not what it computes: they may change on --resume (the trainer's
# apply to every Lightning run, training and pretraining alike)
TRAINER_RUNTIME_KEYS = (
    "trainer.accelerator",
    "trainer.devices",
    "trainer.num_nodes",
    "trainer.strategy",
    "trainer.tensorboard",
    "trainer.log_every",
)
RUNTIME_KEYS = (*TRAINER_RUNTIME_KEYS, "data.num_workers")
# what a run writes into its folder (its manifest lists them; --restart / an automatic restart removes only those)
_RUN_ENTRIES = (CKPT_DIR, "logs", CONFIG_NAME, INPUTS_NAME, BEST_MODEL, LAST_MODEL)
RUN_KIND = "train"
# the files of a run folder written before run markers existed (no .slicewise-run.json): adopted only when every
# file in it is one of these and it holds one of LEGACY_PROOF (config.yaml alone is a user's config, not a run)
_LEGACY_FILES = re.compile(
    r"(config\.yaml|inputs\.json|best\.pt|last\.pt|hpc_ckpt_\d+\.ckpt|checkpoints/[^/]+\.ckpt"
    r"|logs/version_\d+/(metrics\.csv|hparams\.yaml)|logs/tensorboard/version_\d+/[^/]+)"
)
LEGACY_PROOF = (INPUTS_NAME, f"{CKPT_DIR}/last.ckpt", BEST_MODEL, LAST_MODEL)
# Lightning notices that say nothing to a slicewise user (resuming into the run's own folder etc.)
_EXPECTED_WARNINGS = (
    r".*Checkpoint directory .* exists and is not empty",
    r".*isinstance\(treespec, LeafSpec\)",
    r".*smaller than the logging interval",
)  # logging counts global steps, not loader epochs


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


def legacy_run_entry(rel: str) -> bool:
    """Whether ``rel`` (a path relative to a run folder) is a file a run wrote before run markers existed."""
    return _LEGACY_FILES.fullmatch(rel) is not None


def prepare_run_dir(out: Path, kind: str = RUN_KIND) -> str:
    """Check run folder ``out`` and write its marker before anything is written or removed
    (:func:`slicewise.utils.ownership.prepare_run_folder` with the run layout of this module): a folder
    holding anything a run did not write is refused in one line, whatever the flags. Returns
    ``"new"``, ``"ours"`` or ``"legacy"`` (an old run folder without marker, adopted)."""
    return prepare_run_folder(out, kind, legacy=legacy_run_entry, legacy_proof=LEGACY_PROOF, what="run folder")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint IO: writes through :func:`slicewise.data.io.outputs.atomic_path`, reads weights-only.

    A Lightning checkpoint of a slicewise run holds only tensors, containers and primitive values
    (state dict, optimizer and loop states, callback states), so ``torch.load(weights_only=True)``
    reads it and a checkpoint that would unpickle anything else is refused in one line. With ``run_dir``
    every checkpoint written inside it is added to the folder's manifest (:func:`slicewise.utils.ownership.record`).
    A write that fails (a full disk) leaves the previous checkpoint in place and raises a one-line error.
    """

    def __init__(self, run_dir: Path | None = None) -> None:
        super().__init__()
        self.run_dir = run_dir

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        with atomic_path(path) as tmp:  # a failed write: one-line WriteError, the previous checkpoint kept
            torch.save(checkpoint, tmp)
        p = Path(path).absolute()
        if self.run_dir is not None and p.is_relative_to(self.run_dir.absolute()):
            record(self.run_dir, p.relative_to(self.run_dir.absolute()))

    def load_checkpoint(
        self, path: Any, map_location: Any | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        return load_checkpoint_file(Path(path), map_location=map_location or "cpu")


class StaleRunError(InputError):
    """The run in a folder cannot be resumed safely (damaged or foreign checkpoint, changed config or
    data); ``--restart`` (``restart=True``) starts it afresh."""


def load_checkpoint_file(path: Path, map_location: Any = "cpu") -> dict[str, Any]:
    """A Lightning checkpoint read with ``weights_only=True``; one-line :class:`InputError` if unreadable or unsafe."""
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise StaleRunError(
            f"checkpoint {path} holds objects other than tensors and plain values "
            f"({str(err).splitlines()[0][:120]}): it was not written by slicewise and is not loaded; "
            f"delete it or start afresh with --restart"
        ) from None
    except Exception as err:  # truncated / corrupt zip container, EOF, wrong format
        raise StaleRunError(
            f"checkpoint {path} is damaged or incomplete ({type(err).__name__}): "
            f"start afresh with --restart (keeps nothing of the interrupted run)"
        ) from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise StaleRunError(
            f"checkpoint {path} is not a Lightning checkpoint of a slicewise run: start afresh with --restart"
        )
    try:  # the fields Lightning and slicewise read on restore: wrong types are one line, not a traceback
        parse_metadata(LightningCheckpoint, ckpt, path, "it was not written by slicewise; start afresh with --restart")
    except InputError as err:
        raise StaleRunError(str(err)) from None
    return ckpt


class RecordedInputs(MetadataModel):
    """A run folder's ``inputs.json`` (untrusted when read back): the resolved config and the data identities."""

    config: dict[str, Any] = {}
    data: dict[str, dict[str, Any] | list[dict[str, Any]]] = {}


class LightningCheckpoint(MetadataModel):
    """The fields of a Lightning checkpoint that a restore reads (a forged ``epoch: "x"`` is refused in one line)."""

    state_dict: dict[str, Any]
    epoch: Annotated[int, Field(strict=True, ge=0)] | None = None
    global_step: Annotated[int, Field(strict=True, ge=0)] | None = None
    hyper_parameters: dict[str, Any] | None = None
    callbacks: dict[str, Any] | None = None
    optimizer_states: list[Any] | None = None
    lr_schedulers: list[Any] | None = None
    loops: dict[str, Any] | None = None


class RunCheckpoint(ModelCheckpoint):
    """ModelCheckpoint whose restored state can only name files inside its own ``dirpath``.

    Lightning restores ``best_model_path``, ``best_k_models`` … from a checkpoint and later loads or
    deletes those files. On restore every such path is rebased to ``dirpath / <file name>``: a run
    folder that was moved or copied keeps its best checkpoint, and a forged path to a file elsewhere
    can only ever name a file inside the run's own checkpoint folder.
    """

    def _rebase(self, path: Any) -> str:
        if not path or self.dirpath is None:
            return ""
        return str(Path(self.dirpath) / Path(str(path)).name)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        if self.dirpath is not None:
            state["dirpath"] = str(self.dirpath)
        for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
            if key in state:
                state[key] = self._rebase(state[key])
        if isinstance(state.get("best_k_models"), dict):
            state["best_k_models"] = {self._rebase(k): v for k, v in state["best_k_models"].items() if k}
        super().load_state_dict(state)


def resolve_config(
    config: TrainConfig | dict[str, Any] | str | os.PathLike | None = None, overrides: list[str] | None = None
) -> TrainConfig:
    """A :class:`TrainConfig` from an object, a dict or a YAML path, with ``key=value`` overrides."""
    if config is None or isinstance(config, (str, os.PathLike)):
        return load_config(TrainConfig, config, overrides)
    if isinstance(config, TrainConfig):
        config = config.model_dump(mode="json")
    if not isinstance(config, dict):
        raise ConfigError(f"config must be a TrainConfig, a dict or a YAML path, not {type(config).__name__}")
    return validate_with_overrides(TrainConfig, deep_merge(config, parse_overrides(overrides)), overrides)


def lightning_precision(trainer: Any) -> str:
    """Lightning's precision for a ``trainer`` config section: ``auto`` is ``bf16-mixed`` on CUDA, 32-bit elsewhere."""
    p = trainer.precision
    if p != "auto":
        return "32-true" if p == "32" else p
    gpu = torch.cuda.is_available() and trainer.accelerator in ("auto", "gpu", "cuda")
    return "bf16-mixed" if gpu else "32-true"


@dataclass(frozen=True)
class RunLayout:
    """What the Lightning runs of one command (``train``, ``pretrain``) write into their folder, for the folder
    rules they share (:func:`run_out_dir`, :func:`prepare_folder`, :func:`check_recorded_inputs`).

    ``noun``: the run in messages ("training run"); ``entries``: what a run writes (its manifest lists them);
    ``finished``: files a finished run keeps when its checkpoints are gone (model or weights files);
    ``runtime_keys``: config keys that say where a run executes, not what it computes (they may change on resume).
    """

    command: str
    noun: str
    entries: tuple[str, ...]
    finished: tuple[str, ...]
    runtime_keys: tuple[str, ...]


TRAIN_LAYOUT = RunLayout("train", "training run", _RUN_ENTRIES, (BEST_MODEL, LAST_MODEL), RUNTIME_KEYS)


def _default_out(command: str) -> Path:
    """``runs/<command>-<UTC time>[-n]``, the same for the processes Lightning spawns for DDP (they
    inherit it through the environment); torchrun / SLURM launches must pass ``--out``."""
    if int(os.environ.get("LOCAL_RANK", "0")) > 0 and _OUT_ENV in os.environ:
        return Path(os.environ[_OUT_ENV])
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 or int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        raise InputError(
            "multi-process launches (torchrun, SLURM) need a run folder shared by all ranks: pass --out DIR"
        )
    base = Path("runs") / time.strftime(f"{command}-%Y%m%d-%H%M%S", time.gmtime())
    p, n = base, 1
    while p.exists():
        n += 1
        p = base.with_name(f"{base.name}-{n}")
    os.environ[_OUT_ENV] = str(p)
    return p


def is_global_zero_env() -> bool:
    """True unless the launcher's environment says this process is not global rank 0 (DDP children,
    torchrun / SLURM ranks); those neither claim nor clean the shared run folder."""
    for var in ("RANK", "SLURM_PROCID"):
        if os.environ.get(var, "").strip().isdigit():
            return int(os.environ[var]) == 0
    return all(int(os.environ.get(v, "0") or 0) == 0 for v in ("LOCAL_RANK", "NODE_RANK", "GROUP_RANK"))


def run_out_dir(out: str | os.PathLike | None, resume: bool, layout: RunLayout = TRAIN_LAYOUT) -> Path:
    """The run folder: ``out``, or a new ``runs/<command>-<time>`` (refused with ``resume``, or a file)."""
    if out is None:
        if resume:
            raise InputError("--resume needs the run folder: pass --out DIR (out=...) of the interrupted run")
        return _default_out(layout.command)
    p = Path(out)
    if p.exists() and not p.is_dir():
        raise InputError(f"--out {p} is a file, not a folder: choose a folder for the run")
    return p


def prepare_folder(p: Path, resume: bool, restart: bool, zero: bool, layout: RunLayout = TRAIN_LAYOUT) -> bool:
    """Decide how to use run folder ``p``; returns whether to resume from ``checkpoints/last.ckpt``.

    Nothing completed (no ``last.ckpt``, no finished file) → (re)start afresh, whatever ``resume`` says
    (a kill -9 during the first checkpoint write leaves no dead end); ``restart`` discards an
    existing run; a completed checkpoint, or the files of a finished run, without ``resume`` /
    ``restart`` is a one-line error naming the flag that applies. Only manifest entries are ever removed
    (:func:`slicewise.utils.ownership.remove_owned`; the folder's ownership is checked before).
    """
    last = p / CKPT_DIR / "last.ckpt"
    has_run = any((p / name).exists() for name in layout.entries)
    if restart:
        if zero and has_run:
            remove_owned(p)
        return False
    if last.is_file():
        if not resume:
            raise InputError(
                f"{p} already holds a {layout.noun}: pass --resume to continue it, --restart to start it "
                f"afresh, or choose another --out"
            )
        return True
    if resume and not has_run:
        raise InputError(
            f"cannot resume: {p} holds no {layout.noun} ({last} does not exist); start a new run without --resume"
        )
    if any((p / name).is_file() for name in layout.finished):  # a finished run, its checkpoints removed
        raise StaleRunError(
            f"{p} holds the {'/'.join(layout.finished)} of a finished run but no checkpoint to resume from: "
            f"pass --restart to run it afresh (replacing them), or choose another --out"
        )
    if has_run:
        if resume:
            log.warning("%s: the interrupted run completed no checkpoint; starting it afresh", p)
        if zero:
            remove_owned(p)
    return False


def config_record(cfg: Any, layout: RunLayout = TRAIN_LAYOUT) -> dict[str, Any]:
    """The resolved config as JSON, without the keys that may change on resume (``layout.runtime_keys``)."""
    conf = cfg.model_dump(mode="json")
    for key in layout.runtime_keys:
        section, name = key.split(".")
        conf.get(section, {}).pop(name, None)
    return conf


def _identity_record(cfg: TrainConfig) -> dict[str, Any]:
    """Resolved config (runtime-only keys removed) and ``input_identity`` of each data file of the run."""
    data: dict[str, Any] = {}
    d = cfg.data
    for role in ("raw", "labels", "instances"):
        path = getattr(d, role)
        if path is not None:
            with open_volume(path, key=getattr(d, f"{role}_key")) as vol:
                data[role] = input_identity(vol, path)
    return {"config": config_record(cfg), "data": data}


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def _identities(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{role: identity}``; a role holding several files (pretraining's ``raw`` list) becomes ``role[i]``."""
    out: dict[str, dict[str, Any]] = {}
    for role, rec in data.items():
        for i, one in enumerate(rec) if isinstance(rec, list) else [(None, rec)]:
            out[role if i is None else f"{role}[{i}]"] = one
    return out


def check_recorded_inputs(out: Path, current: dict[str, Any], layout: RunLayout = TRAIN_LAYOUT) -> None:
    """Refuse to resume when the config or a data file differs from the one the run began with (``inputs.json``)."""
    path = out / INPUTS_NAME
    if not path.is_file():
        return
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError):
        raise StaleRunError(f"{path} is damaged: resume is unsafe without it; start afresh with --restart") from None
    try:
        recorded = parse_metadata(RecordedInputs, raw, path, "resume is unsafe without it; start afresh with --restart")
    except InputError as err:
        raise StaleRunError(str(err)) from None
    recorded = recorded.model_dump()
    old, new = _flat(recorded.get("config", {})), _flat(current["config"])
    changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    if changed:
        k = changed[0]
        raise StaleRunError(
            f"cannot resume {out}: the config changed since the run began ({k}: {old.get(k)!r} → {new.get(k)!r}"
            f"{f' and {len(changed) - 1} more' if len(changed) > 1 else ''}); resume with the run's own "
            f"config (slicewise {layout.command} --out {out} --resume) or start afresh with --restart"
        )
    now = _identities(current["data"])
    before = _identities(recorded.get("data", {}))
    if before.keys() != now.keys():
        raise StaleRunError(
            f"cannot resume {out}: its data files changed since the run began ({sorted(before)} → "
            f"{sorted(now)}); restore them, or start afresh with --restart"
        )
    for role, rec in before.items():
        try:
            check_identity(
                rec,
                now[role],
                what=f"{layout.noun.split()[0]} data {role} ({rec.get('path', '?')})",
                fix="restore the original file, or start afresh with --restart",
            )
        except InputError as err:
            raise StaleRunError(str(err)) from None


def _trainer(
    cfg: TrainConfig, out: Path, callbacks: list[pl.Callback], has_val: bool
) -> tuple[pl.Trainer, ModelCheckpoint]:
    """The Lightning Trainer of a run. Lightning's start-up notices (GPU/TPU available, advertisement tips) are
    silenced while slicewise builds and fits it (:func:`slicewise.utils.progress.quiet_lightning`, a scoped
    filter removed afterwards); its warnings show."""
    tc = cfg.trainer
    # two callbacks: Lightning 2.6 writes save_last only when the top-k one saved in that step
    last = RunCheckpoint(
        dirpath=out / CKPT_DIR,
        filename="last",
        monitor=None,
        save_top_k=1,
        enable_version_counter=False,
        save_on_train_epoch_end=not has_val,
    )
    ckpt = (
        RunCheckpoint(
            dirpath=out / CKPT_DIR,
            filename="best",
            monitor=MONITOR,
            mode="max",
            save_top_k=1,
            enable_version_counter=False,
            auto_insert_metric_name=False,
            save_on_train_epoch_end=False,
        )
        if has_val
        else last
    )
    bar = lightning_progress(tc.max_steps, what=f"training {cfg.model.channel_init}")
    cbs: list[pl.Callback] = [last, *([ckpt] if has_val else []), *callbacks, *([bar] if bar is not None else [])]
    loggers: list[Any] = [CSVLogger(out, name="logs")]
    if tc.tensorboard:
        if not any(importlib.util.find_spec(m) for m in ("tensorboard", "tensorboardX")):
            raise ConfigError(
                "trainer.tensorboard needs the tensorboard package: pip install tensorboard, "
                "or set trainer.tensorboard=false"
            )

        loggers.append(TensorBoardLogger(out / "logs", name="tensorboard"))
    return lightning_trainer(cfg, out, cbs, loggers, has_val), ckpt


def lightning_trainer(
    cfg: Any, out: Path, callbacks: list[pl.Callback], loggers: list[Any], has_val: bool = True
) -> pl.Trainer:
    """The step-based Lightning Trainer of a slicewise run (``train``, ``pretrain``; ``cfg`` has ``trainer`` and
    ``optim.grad_clip``) in run folder ``out``: checkpoints through :class:`AtomicCheckpointIO`, the bar when a
    :class:`TQDMProgressBar` is among ``callbacks``, and each logger's fresh ``version_<n>/`` folder recorded in the
    folder's manifest. Lightning's refusal of the ``trainer.*`` settings is one :class:`ConfigError` line."""
    tc = cfg.trainer
    try:
        trainer = pl.Trainer(
            max_steps=tc.max_steps,
            max_epochs=-1,
            accelerator=tc.accelerator,
            devices=tc.devices,
            num_nodes=tc.num_nodes,
            strategy=tc.strategy,
            precision=lightning_precision(tc),
            deterministic=tc.deterministic,
            callbacks=callbacks,
            logger=loggers,
            log_every_n_steps=tc.log_every,
            check_val_every_n_epoch=1,
            reload_dataloaders_every_n_epochs=1,
            limit_val_batches=1.0 if has_val else 0,
            num_sanity_val_steps=0,
            use_distributed_sampler=False,
            gradient_clip_val=cfg.optim.grad_clip,
            enable_progress_bar=any(isinstance(c, TQDMProgressBar) for c in callbacks),
            enable_model_summary=False,
            default_root_dir=out,
            plugins=[AtomicCheckpointIO(out)],
        )
    except (MisconfigurationException, ValueError, RuntimeError) as err:  # accelerator, devices, strategy …
        first = " ".join(str(err).split())[:200]
        raise ConfigError(
            f"Lightning rejects the trainer settings (accelerator={tc.accelerator}, devices={tc.devices}, "
            f"strategy={tc.strategy}, num_nodes={tc.num_nodes}): {first}; fix trainer.* (e.g. "
            f"trainer.accelerator=cpu)"
        ) from None
    if trainer.is_global_zero:  # each (re)start logs into a fresh version_<n>/ folder, owned whole
        record(out, *(Path(lg.log_dir) for lg in loggers), dirs=True)
    return trainer


def _export(module: Any, ckpt: ModelCheckpoint, out: Path) -> None:
    """Write best.pt / last.pt (slicewise model files) from the trained module and the best checkpoint."""
    model = module.model
    record(out, LAST_MODEL, BEST_MODEL)  # listed first: a write that fails leaves no unlisted half-file behind
    save_model(model, out / LAST_MODEL)
    best_path = out / CKPT_DIR / "best.ckpt"  # never a path read from a checkpoint
    if best_path.is_file():
        state = load_checkpoint_file(best_path)["state_dict"]
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
    restart: bool = False,
) -> TrainResult:
    """Fine-tune a segmentation model; see the module docstring for the run folder, its states and DDP.

    ``config``: a :class:`TrainConfig`, a dict, a YAML path or ``None`` (defaults: the synthetic
    phantom); ``overrides``: ``["optim.lr=3e-4", ...]``; ``resume``: continue the run in ``out``
    from ``checkpoints/last.ckpt`` (without ``config`` the run's own ``config.yaml`` is used; a
    changed config or data is refused); ``restart``: discard the run in ``out`` and start afresh
    (again without ``config``: with the run's own ``config.yaml``);
    ``callbacks``: extra Lightning callbacks.
    """
    if resume and restart:
        raise InputError("--resume and --restart exclude each other: --resume continues the run, --restart discards it")
    out_dir = run_out_dir(out, resume)
    zero = is_global_zero_env()
    if zero:
        check_writable_folder(out_dir.parent, what=f"run folder {out_dir}")
    with claim_output(out_dir) if zero else contextlib.nullcontext(out_dir):
        if zero:  # a folder holding anything a run did not write is refused here, before anything is read or removed
            check_folder(out_dir, RUN_KIND, legacy=legacy_run_entry, legacy_proof=LEGACY_PROOF, what="run folder")
        if config is None and (resume or restart) and (out_dir / CONFIG_NAME).is_file():
            config = read_yaml_mapping(out_dir / CONFIG_NAME)  # the run's own config, read before any cleaning
        elif config is None and resume:
            raise InputError(
                f"cannot resume: {out_dir} holds no training run ({out_dir / CONFIG_NAME} does not exist); "
                f"start a new run without --resume"
            )
        cfg = resolve_config(config, overrides)  # read (even DIR/config.yaml itself) before anything is replaced
        with removed_if_refused(out_dir) if zero else contextlib.nullcontext():
            if zero:
                prepare_run_dir(out_dir)
            resume = prepare_folder(out_dir, resume, restart, zero)
            with (
                resume_hint(
                    f"resume with: slicewise train --out {out_dir} --resume (from its last checkpoint; the run "
                    f"restarts afresh if it completed none)"
                ),
                write_guard(out_dir, what="run folder"),
            ):
                return _train(cfg, out_dir, resume, list(callbacks or []))


def _check_resumable(out_dir: Path, identity: dict[str, Any]) -> None:
    """Refuse a resume whose config or data changed, or whose checkpoints are damaged or unsafe: one line, before
    any work."""
    check_recorded_inputs(out_dir, identity)
    for path in (out_dir / CKPT_DIR / "last.ckpt", out_dir / CKPT_DIR / "best.ckpt"):
        if path.is_file():
            load_checkpoint_file(path)


def _build_checked_model(cfg: TrainConfig, data: SliceDataModule) -> Any:
    """The run's model, checked against the channels of the data's stacks and the patch size."""
    model = build_model(cfg.model)
    sample = data.train_set[0]["image"]
    if sample.shape[0] != model.in_channels:
        raise ConfigError(
            f"the data give {sample.shape[0]} input channels per stack but the model takes {model.in_channels}: "
            f"match model.in_slices (and color channels) to the data"
        )
    model.check_input_size(*cfg.data.patch_size)
    return model


def _write_run_record(cfg: TrainConfig, out_dir: Path, resume: bool, identity: dict[str, Any], device: Any) -> None:
    """``config.yaml`` and, unless a resumed run has it, ``inputs.json`` (identity plus the environment the run
    began in: the environment is not compared on ``--resume``, only config and data are)."""
    record(out_dir, CONFIG_NAME, INPUTS_NAME)
    save_config(cfg, out_dir / CONFIG_NAME)
    if not resume or not (out_dir / INPUTS_NAME).is_file():
        env = environment_info(device, cfg.seed)
        write_json(out_dir / INPUTS_NAME, {**identity, "environment": env}, overwrite=True)


def _train(cfg: TrainConfig, out_dir: Path, resume: bool, callbacks: list[pl.Callback]) -> TrainResult:
    workers = cap_workers(cfg.data.num_workers)
    if workers != cfg.data.num_workers:
        cfg.data.num_workers = workers
    configure_threads(processes=1 + workers)
    identity = _identity_record(cfg)
    last_ckpt = out_dir / CKPT_DIR / "last.ckpt"
    if resume:
        _check_resumable(out_dir, identity)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    has_val = cfg.data.val_fraction > 0 or cfg.data.val_range is not None
    with quiet_lightning():
        trainer, ckpt = _trainer(cfg, out_dir, callbacks, has_val=has_val)
    data = SliceDataModule(cfg, world_size=trainer.world_size)
    data.setup("fit")
    module = SegmentationModule(_build_checked_model(cfg, data), cfg)
    if trainer.is_global_zero:
        _write_run_record(cfg, out_dir, resume, identity, trainer.strategy.root_device)
        status(
            "training %s %s (%d steps%s) into %s",
            cfg.model.encoder,
            cfg.model.channel_init,
            cfg.trainer.max_steps,
            ", resuming" if resume else "",
            out_dir,
        )
    with warnings.catch_warnings(), quiet_lightning():
        for pattern in _EXPECTED_WARNINGS:
            warnings.filterwarnings("ignore", message=pattern)
        trainer.fit(module, datamodule=data, ckpt_path=last_ckpt if resume else None, weights_only=True)
    if trainer.is_global_zero:
        _export(module, ckpt, out_dir)
    trainer.strategy.barrier("slicewise-export")
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if torch.is_tensor(v) and v.numel() == 1}
    best = ckpt.best_model_score
    csv = Path(trainer.loggers[0].log_dir) / "metrics.csv"
    best_ckpt = out_dir / CKPT_DIR / "best.ckpt"
    return TrainResult(
        out_dir=out_dir,
        config=cfg,
        last_checkpoint=last_ckpt,
        best_checkpoint=best_ckpt if best_ckpt.is_file() else None if has_val else last_ckpt,
        last_model=out_dir / LAST_MODEL,
        best_model=out_dir / BEST_MODEL,
        metrics=metrics,
        best_score=None if best is None else float(best),
        metrics_csv=csv if csv.is_file() else None,
    )
