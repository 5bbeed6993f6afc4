"""``pretrain()``: self-supervised pretraining of an encoder on unlabelled volumes, on PyTorch Lightning.

Run folder (``out``; default ``runs/pretrain-<UTC time>``)::

    config.yaml              the resolved PretrainConfig (``slicewise pretrain --config out/config.yaml`` repeats it)
    inputs.json              identity of the config and of the volumes (checked by ``--resume``)
    checkpoints/last.ckpt    Lightning checkpoint after the latest validation (``--resume`` uses it)
    encoder.safetensors      the pretrained encoder with its provenance (:mod:`slicewise.models.encoder_file`):
                             ``model.weights=<out>/encoder.safetensors`` in ``train`` / ``build_model``
    logs/version_<n>/metrics.csv   ``train/loss``, ``lr``, ``val/embedding_std(_ratio)``, ``val/knn``
    report.html, report/curves.png (+ .svg)   the curves and the provenance on one page

The folder is handled as ``train`` handles its run folder (:mod:`slicewise.training.run`): it is claimed
(``claim_output``), marked and its manifest kept (:mod:`slicewise.utils.ownership`, kind ``pretrain``: only
what the run wrote is ever removed); checkpoints are written atomically and read weights-only
(:class:`~slicewise.training.run.AtomicCheckpointIO`), stored paths rebased
(:class:`~slicewise.training.run.RunCheckpoint`); a folder holding a run needs ``--resume`` (refused when the
config or a volume changed: ``inputs.json``) or ``--restart``; a run that completed no checkpoint restarts.

Determinism: ``seed_everything(seed)`` before the encoder is built; the views of step s and the torch RNG are
seeded from ``(seed, s, rank)`` (:mod:`slicewise.selfsup.module`), so a resumed run (also after kill -9)
ends with the weights of an uninterrupted one (bit-identical on CPU; on GPU up to non-deterministic
kernels unless ``trainer.deterministic``).

Devices, precision and DDP (as ``train``): ``trainer.accelerator`` / ``devices`` / ``num_nodes`` /
``strategy`` go to ``pytorch_lightning.Trainer``; ``precision: auto`` is ``bf16-mixed`` on CUDA and 32-bit
on CPU. Each rank draws its own views (its own seed stream), so the effective batch is W · ``data.batch_size``;
MoCo's memory bank and BYOL/MoCo momentum copies are per rank (DDP keeps the online weights in step).
Give every rank the same ``--out``; rank 0 writes config, checkpoints, logs, weights file and report.

- one node: ``slicewise pretrain RAW --out DIR trainer.devices=4 trainer.strategy=ddp``;
- torchrun: ``torchrun --nproc_per_node=4 -m slicewise.cli pretrain RAW --out DIR trainer.devices=4
  trainer.strategy=ddp``;
- SLURM (``--ntasks-per-node=4``): ``srun slicewise pretrain RAW --out DIR trainer.devices=4 trainer.num_nodes=2
  trainer.strategy=ddp`` (Lightning detects SLURM; a requeued job continues with ``--resume``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import CSVLogger
from torch.utils.data import DataLoader

from slicewise import __version__
from slicewise.config import PretrainConfig, read_yaml_mapping, resolve_pretrain_config, save_config
from slicewise.data.io import open_volume
from slicewise.data.io.checks import check_raw
from slicewise.data.stacking import to_device_tensor
from slicewise.data.synthetic import make_phantom
from slicewise.errors import ConfigError, InputError
from slicewise.models.encoder_file import save_encoder
from slicewise.selfsup.methods import build_backbone, build_method
from slicewise.selfsup.module import PretrainModule
from slicewise.selfsup.probe import ProbeSet
from slicewise.selfsup.report import write_report
from slicewise.selfsup.views import ViewSource, check_unlabelled
from slicewise.training.datamodule import StepNumbers, StepSampler, fits_on_device
from slicewise.training.run import (
    TRAINER_RUNTIME_KEYS,
    RunCheckpoint,
    RunLayout,
    check_recorded_inputs,
    config_record,
    is_global_zero_env,
    lightning_trainer,
    load_checkpoint_file,
    prepare_folder,
    run_out_dir,
)
from slicewise.utils.atomic import check_writable_folder, claim_output, write_guard, write_json
from slicewise.utils.device import configure_threads
from slicewise.utils.environment import environment_info
from slicewise.utils.identity import input_identity
from slicewise.utils.ownership import check_folder, prepare_run_folder, record, removed_if_refused
from slicewise.utils.progress import lightning_progress, quiet_lightning, status
from slicewise.utils.signals import resume_hint

__all__ = ["PretrainResult", "pretrain", "resolve_pretrain_config"]

log = logging.getLogger(__name__)
RUN_KIND = "pretrain"
CONFIG_NAME, INPUTS_NAME, CKPT_DIR = "config.yaml", "inputs.json", "checkpoints"
WEIGHTS_NAME, REPORT_NAME, REPORT_DIR = "encoder.safetensors", "report.html", "report"
_RUN_ENTRIES = (CKPT_DIR, "logs", CONFIG_NAME, INPUTS_NAME, WEIGHTS_NAME, REPORT_NAME, REPORT_DIR)
# config keys that say where a run executes, not what it computes: they may change on --resume
RUNTIME_KEYS = (*TRAINER_RUNTIME_KEYS, "data.on_device")
PRETRAIN_LAYOUT = RunLayout("pretrain", "pretraining run", _RUN_ENTRIES, (WEIGHTS_NAME,), RUNTIME_KEYS)
_EXPECTED_WARNINGS = (
    r".*Checkpoint directory .* exists and is not empty",
    r".*isinstance\(treespec, LeafSpec\)",
    r".*smaller than the logging interval",
    r".*does not have many workers",
)


@dataclass
class PretrainResult:
    """What a pretraining run produced (paths in its folder) and its final metrics (plain floats)."""

    out_dir: Path
    config: PretrainConfig
    weights: Path
    metrics_csv: Path | None
    report: Path | None
    metrics: dict[str, float] = field(default_factory=dict)


def _phantom(cfg: PretrainConfig) -> Any:
    return make_phantom(tuple(cfg.data.synthetic.shape), seed=cfg.data.synthetic.seed)


def _open_volumes(cfg: PretrainConfig) -> tuple[list[Any], list[dict[str, Any]], Any]:
    """The raw volumes (checked: intensities, not labels), their identity records and the probe labels (or None)."""
    d = cfg.data
    if not d.raw:
        ph = _phantom(cfg)
        labels = ph.semantic if d.probe_labels is None else open_volume(d.probe_labels, key=d.probe_labels_key)
        return [ph.raw], [{"synthetic": list(d.synthetic.shape), "seed": d.synthetic.seed}], labels
    vols, ids = [], []
    for path in d.raw:
        vol = open_volume(path, key=d.key)
        what = f"raw volume {path}"
        check_raw(vol, what=what)
        check_unlabelled(vol, what)
        vols.append(vol)
        ids.append(input_identity(vol, path))
    labels = None if d.probe_labels is None else open_volume(d.probe_labels, key=d.probe_labels_key)
    return vols, ids, labels


def _identity_record(cfg: PretrainConfig, ids: list[dict[str, Any]], labels: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"raw": ids}
    if labels is not None and cfg.data.probe_labels is not None:
        data["probe_labels"] = input_identity(labels, cfg.data.probe_labels)
    return {"config": config_record(cfg, PRETRAIN_LAYOUT), "data": data}


def _resident(volumes: list[Any], setting: bool | str, device: torch.device) -> list[Any]:
    """The volumes as device tensors when ``data.on_device`` says so (``auto``: :func:`fits_on_device`), else as
    they are (read by region)."""
    if setting is False:
        return volumes
    need = sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in volumes)
    if setting == "auto" and not fits_on_device(need, device, "volumes", "reading regions on demand"):
        return volumes
    return [to_device_tensor(v[:], device) for v in volumes]


class _StepData(pl.LightningDataModule):
    """Training "batches" are step numbers (the module draws the views); validation is one call per interval."""

    def __init__(self, cfg: PretrainConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self._loaders: dict[int, DataLoader] = {}

    def train_dataloader(self) -> DataLoader:
        t, tc = self.trainer, self.cfg.trainer
        done = t.global_step if t is not None else 0
        steps = max(1, min(tc.val_every, tc.max_steps - done))
        if steps not in self._loaders:
            start = (lambda: t.global_step) if t is not None else (lambda: 0)
            numbers = StepSampler(steps, 1, start, tc.max_steps)
            self._loaders[steps] = DataLoader(
                StepNumbers(tc.max_steps), sampler=numbers, batch_size=None, num_workers=0
            )
        return self._loaders[steps]

    def val_dataloader(self) -> DataLoader:
        return DataLoader(StepNumbers(1), batch_size=None, num_workers=0)


def _trainer(cfg: PretrainConfig, out: Path, callbacks: list[pl.Callback]) -> pl.Trainer:
    last = RunCheckpoint(
        dirpath=out / CKPT_DIR,
        filename="last",
        monitor=None,
        save_top_k=1,
        enable_version_counter=False,
        save_on_train_epoch_end=False,
    )
    bar = lightning_progress(cfg.trainer.max_steps, what=f"pretraining {cfg.method.name}")
    cbs: list[pl.Callback] = [last, *callbacks, *([bar] if bar is not None else [])]
    return lightning_trainer(cfg, out, cbs, [CSVLogger(out, name="logs")])


def _check_sizes(backbone: Any, cfg: PretrainConfig) -> None:
    div = int(max(backbone.encoder.reductions))
    for name, (h, w) in (
        ("data.patch_size", cfg.data.patch_size),
        ("data.probe_patch_size", (cfg.data.probe_patch_size,) * 2),
    ):
        if h < div or w < div or h % div or w % div:
            good = max(div, -(-h // div) * div)
            raise ConfigError(
                f"{name}={h}x{w} does not fit {cfg.model.encoder}: sizes must be multiples of {div} "
                f"(e.g. {name}={good})"
            )


def provenance(cfg: PretrainConfig, steps: int, data: dict[str, Any], backbone: Any, device: Any) -> dict[str, Any]:
    """The provenance stored in the weights file (see :mod:`slicewise.models.encoder_file`)."""
    m = cfg.model
    return {
        "encoder": m.encoder,
        "in_slices": m.in_slices,
        "colors": m.colors,
        "channel_init": m.channel_init,
        "dz": cfg.data.dz,
        "border": cfg.data.border,
        "start_weights": m.weights,
        "method": cfg.method.name,
        "steps": int(steps),
        "seed": cfg.seed,
        "data": data,
        "first_conv": backbone.encoder.first_conv,
        "mean": [float(v) for v in backbone.mean.flatten()],
        "std": [float(v) for v in backbone.std.flatten()],
        "slicewise_version": __version__,
        "environment": environment_info(device=device, seed=cfg.seed),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def pretrain(
    raw: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    out: str | os.PathLike | None = None,
    config: PretrainConfig | dict[str, Any] | str | os.PathLike | None = None,
    overrides: Sequence[str] = (),
    resume: bool = False,
    restart: bool = False,
    callbacks: Sequence[pl.Callback] = (),
) -> PretrainResult:
    """Pretrain an encoder self-supervised on unlabelled volumes; see the module docstring.

    ``raw``: one or more volume paths (replace ``data.raw``; ``None``: the config's, else the phantom);
    ``out``: run folder; ``config``: a :class:`PretrainConfig`, dict or YAML path; ``overrides``:
    ``["method.name=vicreg", ...]``; ``resume`` continues the run in ``out`` (without ``config``: with its own
    ``config.yaml``), ``restart`` discards it and starts afresh; ``callbacks``: extra Lightning callbacks.
    """
    if resume and restart:
        raise InputError("--resume and --restart exclude each other: --resume continues the run, --restart discards it")
    out_dir = run_out_dir(out, resume, PRETRAIN_LAYOUT)
    zero = is_global_zero_env()
    if zero:
        check_writable_folder(out_dir.parent, what=f"run folder {out_dir}")
    with claim_output(out_dir) if zero else contextlib.nullcontext(out_dir):
        if zero:
            check_folder(out_dir, RUN_KIND, what="run folder")
        if config is None and (resume or restart) and (out_dir / CONFIG_NAME).is_file():
            config = read_yaml_mapping(out_dir / CONFIG_NAME)
        cfg = resolve_pretrain_config(config, overrides, raw)
        with removed_if_refused(out_dir) if zero else contextlib.nullcontext():
            if zero:
                prepare_run_folder(out_dir, RUN_KIND, what="run folder")
            resume = prepare_folder(out_dir, resume, restart, zero, PRETRAIN_LAYOUT)
            with (
                resume_hint(
                    f"resume with: slicewise pretrain --out {out_dir} --resume (from its last checkpoint; the run "
                    f"restarts afresh if it completed none)"
                ),
                write_guard(out_dir, what="run folder"),
            ):
                return _pretrain(cfg, out_dir, resume, list(callbacks))


def _pretrain(cfg: PretrainConfig, out_dir: Path, resume: bool, callbacks: list[pl.Callback]) -> PretrainResult:
    configure_threads(processes=1)
    volumes, ids, labels = _open_volumes(cfg)
    identity = _identity_record(cfg, ids, labels)
    last_ckpt = out_dir / CKPT_DIR / "last.ckpt"
    if resume:
        check_recorded_inputs(out_dir, identity, PRETRAIN_LAYOUT)
        if last_ckpt.is_file():
            load_checkpoint_file(last_ckpt)
    d, m = cfg.data, cfg.model
    probe = None
    if labels is not None:
        probe = ProbeSet(
            volumes[0],
            labels,
            None if d.probe_z is None else list(d.probe_z),
            m.in_slices,
            d.dz,
            d.border,
            d.probe_patch_size,
            d.probe_patches,
            seed=cfg.seed,
            label_map=d.probe_label_map,
        )
    ViewSource(volumes, cfg)  # checks k / dz / sizes / colors before the (slow) encoder and trainer start
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    backbone = build_backbone(m)
    _check_sizes(backbone, cfg)
    method = build_method(backbone, cfg.method)
    with quiet_lightning():
        trainer = _trainer(cfg, out_dir, callbacks)
    device = trainer.strategy.root_device
    source = ViewSource(_resident(volumes, d.on_device, device), cfg, device)
    module = PretrainModule(method, cfg, source, probe)
    if trainer.is_global_zero:
        record(out_dir, CONFIG_NAME, INPUTS_NAME)
        save_config(cfg, out_dir / CONFIG_NAME)
        if not resume or not (out_dir / INPUTS_NAME).is_file():
            write_json(out_dir / INPUTS_NAME, identity, overwrite=True)
        status(
            "pretraining %s %s with %s on %d volume(s) (%d steps%s) into %s",
            m.encoder,
            m.channel_init,
            cfg.method.name,
            len(volumes),
            cfg.trainer.max_steps,
            ", resuming" if resume else "",
            out_dir,
        )
    with warnings.catch_warnings(), quiet_lightning():
        for pattern in _EXPECTED_WARNINGS:
            warnings.filterwarnings("ignore", message=pattern)
        trainer.fit(module, datamodule=_StepData(cfg), ckpt_path=last_ckpt if resume else None, weights_only=True)
    weights = out_dir / WEIGHTS_NAME
    csv = Path(trainer.loggers[0].log_dir) / "metrics.csv"
    report = None
    if trainer.is_global_zero:
        record(out_dir, WEIGHTS_NAME, REPORT_NAME)
        record(out_dir, REPORT_DIR, dirs=True)
        prov = provenance(cfg, trainer.global_step, identity["data"], backbone, device)
        save_encoder(backbone.encoder, weights, prov)
        report = write_report(
            out_dir, cfg, prov, sorted(out_dir.glob("logs/version_*/metrics.csv")), collapsed=module.collapsed
        )
    trainer.strategy.barrier("slicewise-pretrain-export")
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if torch.is_tensor(v) and v.numel() == 1}
    return PretrainResult(
        out_dir=out_dir,
        config=cfg,
        weights=weights,
        metrics_csv=csv if csv.is_file() else None,
        report=report,
        metrics=metrics,
    )
