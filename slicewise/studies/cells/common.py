"""Generic cell plumbing shared by the study recipes: the cell's training config, training (resuming or
reusing a previous attempt), shared prepared data, prediction of a slice range and metric records.

Grid axes map onto the training config (:class:`slicewise.config.TrainConfig`) by
:data:`AXIS_KEYS` (``encoder`` → ``model.encoder``, ``fraction`` → ``data.train_fraction``, ...),
a dotted key (``optim.lr``) is used as it is, and a level named in the study's ``presets`` is a
config fragment merged over ``base``. The training run lives in ``<cell>/train``; a cell that
crashed mid-training resumes from ``checkpoints/last.ckpt``, and one that crashed after training
reuses ``best.pt`` (the weights with the best validation Dice).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from slicewise.config import TrainConfig, deep_merge, validate
from slicewise.data import open_volume
from slicewise.data.io import write_volume
from slicewise.data.io.outputs import atomic_path
from slicewise.errors import ConfigError, InputError
from slicewise.infer.predict import predict
from slicewise.metrics import evaluate
from slicewise.models import build_model, load_model
from slicewise.studies.grid import CellContext, json_hash
from slicewise.training import train
from slicewise.training.run import StaleRunError
from slicewise.utils.ownership import remove_owned

AXIS_KEYS: dict[str, str] = {
    "encoder": "model.encoder",
    "weights": "model.weights",
    "channel_init": "model.channel_init",
    "skips": "model.skips",
    "in_slices": "model.in_slices",
    "fraction": "data.train_fraction",
    "seed": "seed",
}


Record = dict[str, Any]


log = logging.getLogger(__name__)


def record(metric: str, value: float, **labels: Any) -> Record:
    """One row of the tidy table: ``{"metric": metric, "value": float(value), **labels}``."""
    return {"metric": metric, "value": float(value), **labels}


def _set_dotted(d: dict[str, Any], key: str, value: Any) -> None:
    node = d
    parts = key.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value


def cell_config(ctx: CellContext, data: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The cell's TrainConfig as a dict: base, then presets and axis values, then ``data`` entries."""
    cfg = json.loads(json.dumps(ctx.study.base))
    for axis, value in ctx.cell.params.items():
        preset = ctx.study.presets.get(axis, {})
        if str(value) in preset:
            cfg = deep_merge(cfg, preset[str(value)])
        elif axis in AXIS_KEYS or "." in axis:
            _set_dotted(cfg, AXIS_KEYS.get(axis, axis), value)
        else:
            raise ConfigError(
                f"study {ctx.study.name}: grid axis {axis!r} is neither a known axis "
                f"({', '.join(AXIS_KEYS)}), a dotted config key nor a preset"
            )
    if data:
        cfg = deep_merge(cfg, {"data": dict(data)})
    validate(TrainConfig, cfg, f"study {ctx.study.name}, cell {ctx.cell.id}")
    return cfg


def train_model(ctx: CellContext, config: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Fine-tune in ``<cell>/train`` (resuming or reusing a previous attempt); return (model, info).

    Checkpoints and ``best.pt`` are read weights-only (nothing in a cell folder can run code); a
    checkpoint that cannot be resumed safely (damaged, foreign, or from another configuration)
    makes the cell train afresh instead of failing on every rerun.

    Once ``best.pt`` exists the Lightning checkpoints and ``last.pt`` are deleted (they only serve
    resuming) unless the study's ``extras.keep_checkpoints`` is true.
    """
    run = ctx.workdir / "train"
    best = run / "best.pt"
    if not best.is_file():
        resume = (run / "checkpoints" / "last.ckpt").is_file()
        try:
            result = train(dict(config), out=run, resume=resume)
        except StaleRunError as err:  # damaged / foreign checkpoint or changed config: the cell starts afresh
            log.warning("cell %s: %s; training it afresh", ctx.cell.id, err)
            result = train(dict(config), out=run, restart=True)
        best = result.best_model
    model = load_model(best)
    model.eval()
    if not ctx.study.extras.get("keep_checkpoints", False):
        remove_owned(run, ["checkpoints", "last.pt"])  # only what the run's manifest lists (slicewise.utils.ownership)
    return model, {"train_dir": str(run), "model": str(best)}


def initial_model(config: Mapping[str, Any]) -> Any:
    """The network as fine-tuning builds it: same config, pretrained weights and seed (random parts
    such as the decoder are drawn from that seed, not necessarily bit-identical to the training run)."""
    import pytorch_lightning as pl

    cfg = validate(TrainConfig, dict(config))
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    return build_model(cfg.model).eval()


def shared_dir(ctx: CellContext, name: str, spec: Mapping[str, Any]) -> Path:
    """``OUT/data/<name>-<hash of spec>``: prepared data shared by all cells of a run."""
    return ctx.workdir.parent.parent / "data" / f"{name}-{json_hash(spec, 10)}"


def write_once(path: Path, array: np.ndarray) -> Path:
    """Write ``array`` to ``path`` (TIFF) unless another cell already did."""
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            write_volume(tmp, array)
    return path


def read_array(path: Path) -> np.ndarray:
    """A data file named by the study, loaded whole (one-line error when it is missing)."""
    if not path.exists():
        raise InputError(f"data file {path} not found: pass --data-root DIR or set SLICEWISE_DATA_ROOT")
    return np.asarray(open_volume(path)[:])


def _crop(a: np.ndarray, crop: Sequence[int] | None) -> np.ndarray:
    if not crop:
        return a
    y0, y1, x0, x1 = (int(c) for c in crop)
    return a[:, y0:y1, x0:x1]


def em_volume(ctx: CellContext) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """EM stack of the study's ``data`` section: (DataConfig entries, raw Z×Y×X, classes Z×Y×X).

    Training sees only slices ``data.train_z = [z0, z1)`` (so the test slices and their context
    never enter training), cropped to ``data.crop``; that sub-volume is written once to
    ``OUT/data/``. The class map applies ``data.label_map`` (raw label value → class); the
    returned arrays are the whole (cropped) stack, for testing.
    """
    d = ctx.study.data
    raw, lab = (
        _crop(read_array(ctx.path(d["raw"])), d.get("crop")),
        _crop(read_array(ctx.path(d["labels"])), d.get("crop")),
    )
    label_map = {int(k): int(v) for k, v in (d.get("label_map") or {}).items()}
    z0, z1 = (int(v) for v in d.get("train_z", (0, raw.shape[0])))
    folder = shared_dir(ctx, "em", {k: d.get(k) for k in ("raw", "labels", "crop", "train_z")})
    entries: dict[str, Any] = {
        "raw": str(write_once(folder / "raw.tif", raw[z0:z1])),
        "labels": str(write_once(folder / "labels.tif", lab[z0:z1])),
        "label_map": label_map or None,
    }
    classes = lab.copy()
    for k, v in label_map.items():
        classes[lab == k] = v
    return entries, raw, classes


def predict_range(model: Any, raw: np.ndarray, z0: int, z1: int, settings: Mapping[str, Any]) -> np.ndarray:
    """Probabilities (C, z1−z0, Y, X) of slices z0..z1−1, predicted with their context slices."""
    return predict(model, raw, roi=(slice(z0, z1),), **dict(settings))


def semantic_metrics(pred: np.ndarray, gt: np.ndarray, cls: int, **labels: Any) -> list[Record]:
    """Dice and IoU of class ``cls`` and their means over the classes present."""
    ev = evaluate(pred, gt, kind="semantic")["volume"]
    return [
        record("dice", ev["dice"].get(str(cls), float("nan")), **labels),
        record("iou", ev["iou"].get(str(cls), float("nan")), **labels),
        record("mean_dice", ev["mean_dice"], **labels),
        record("mean_iou", ev["mean_iou"], **labels),
    ]
