"""The ``pretraining`` recipe: weight source × training fraction, on a MoNuSeg subset (nucleus Dice/IoU,
AP-50/75 and ARE in-domain and out-of-domain) or, when the study's ``data`` names an EM stack
(``raw``/``labels``, as ``slicewise study init pretraining`` writes), on the user's own volume
(Dice/IoU of the scored class on held-out slices, ARE/VOI of the interior regions).

Self-supervised arms: a level of the ``weights`` axis named in ``extras.pretrain.arms`` (e.g.
``ssl-scratch: {start: random}``, ``ssl-imagenet: {start: imagenet}``) is not a weight source but a
pretraining run (:func:`slicewise.pretrain`) on the study's unlabelled data (the training images or
training slices, plus ``extras.pretrain.unlabelled`` volumes), with the cell's encoder, k and first-layer
strategy, the arm's start point and the cell's seed. The run lives in
``OUT/pretrain/<level>-seed<seed>-<fingerprint>/`` (fingerprint: the pretraining config and data), so it
is computed once per arm and seed and reused by every fine-tuning cell (all training fractions); a
process that finds another computing it (``--gpus`` children) waits for its weights file.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from slicewise.config import deep_merge
from slicewise.errors import ConfigError, InputError
from slicewise.metrics import evaluate, membranes_to_neurons
from slicewise.selfsup.run import WEIGHTS_NAME, pretrain
from slicewise.studies.cells.common import (
    Record,
    cell_config,
    em_volume,
    predict_range,
    read_array,
    record,
    semantic_metrics,
    shared_dir,
    train_model,
    write_once,
)
from slicewise.studies.grid import CellContext, json_hash
from slicewise.utils.atomic import claim_output, lock_path, write_json

PRETRAIN_DIR = "pretrain"
WAIT_POLL_S = 2.0


def _tcga_prefix(name: str) -> str:
    return "-".join(name.split("-")[:2])


def _tiles(img: np.ndarray, size: int) -> list[np.ndarray]:
    h, w = img.shape[:2]
    return [img[y : y + size, x : x + size] for y in range(0, h - size + 1, size) for x in range(0, w - size + 1, size)]


def monuseg_split(ctx: CellContext) -> dict[str, Any]:
    """Training tiles, in-domain test strips and out-of-domain images of the MoNuSeg subset.

    In-domain images (TCGA prefixes in ``data.in_domain``): the left part is cut into ``tile``²
    tiles, of which the last ``val_tiles`` validate (best checkpoint) and the rest train (the
    training fraction samples these); the right ``test_columns`` fraction of every image is the
    in-domain test set. Out-of-domain: whole images of ``data.out_of_domain``. Images are subsampled by
    ``scale``; ``color: gray`` averages RGB (the cell then trains a grayscale network: ``model.colors`` 1,
    ``channel_init`` uniform).
    """
    d = ctx.study.data
    img_dir, lab_dir = ctx.path(d["images"]), ctx.path(d["labels"])
    files = sorted(img_dir.glob("*.png"))
    if not files:
        raise InputError(f"no MoNuSeg images (*.png) in {img_dir}: pass --data-root DIR or set SLICEWISE_DATA_ROOT")
    scale, size = int(d.get("scale", 1)), int(d["tile"])
    rgb = d.get("color", "rgb") == "rgb"

    def load(f: Path) -> tuple[np.ndarray, np.ndarray]:
        img = read_array(f)[0, ::scale, ::scale]
        inst = read_array(lab_dir / f"{f.stem}_instances.tif")[0, ::scale, ::scale]
        if img.ndim == 3 and not rgb:
            img = img[..., :3].mean(-1).round().astype(np.uint8)
        return img[..., :3] if img.ndim == 3 else img, inst

    train_x, train_y, test_in, test_out = [], [], [], []
    for f in files:
        prefix = _tcga_prefix(f.stem)
        if prefix in d["in_domain"]:
            img, inst = load(f)
            cut = int(round(img.shape[1] * (1 - float(d.get("test_columns", 0.25)))))
            train_x += _tiles(img[:, :cut], size)
            train_y += _tiles((inst[:, :cut] > 0).astype(np.uint8), size)
            test_in.append((f.stem, img[:, cut:], inst[:, cut:]))
        elif prefix in d["out_of_domain"]:
            img, inst = load(f)
            test_out.append((f.stem, img, inst))
    if not train_x or not test_out:
        raise InputError(f"MoNuSeg split: no images with prefixes {d['in_domain']} / {d['out_of_domain']} in {img_dir}")
    n_val = int(d.get("val_tiles", 2))
    if not 0 < n_val < len(train_x):
        raise ConfigError(f"data.val_tiles={n_val} must be between 1 and {len(train_x) - 1} (the training tiles)")
    train_x, val_x = train_x[:-n_val], train_x[-n_val:]
    train_y, val_y = train_y[:-n_val], train_y[-n_val:]
    folder = shared_dir(
        ctx,
        "monuseg",
        {k: d.get(k) for k in ("in_domain", "out_of_domain", "tile", "test_columns", "val_tiles", "scale")}
        | {"rgb": rgb},
    )
    raw = np.stack(train_x + val_x)
    lab = np.stack(train_y + val_y)
    entries = {
        "raw": str(write_once(folder / "raw.tif", raw)),
        "labels": str(write_once(folder / "labels.tif", lab)),
        "val_range": [len(train_x), len(train_x) + len(val_x)],
    }
    return {"entries": entries, "rgb": rgb, "in_domain": test_in, "out_of_domain": test_out}


def pretrain_arms(ctx: CellContext) -> dict[str, dict[str, Any]]:
    """``extras.pretrain.arms``: weights level → arm settings (``start``: random or imagenet)."""
    arms = (ctx.study.extras.get("pretrain") or {}).get("arms") or {}
    if not isinstance(arms, Mapping):
        raise ConfigError(
            f"study {ctx.study.name}: extras.pretrain.arms must map weights levels to {{start: random|imagenet}}"
        )
    return {str(k): dict(v or {}) for k, v in arms.items()}


def pretrain_spec(
    ctx: CellContext, arm: Mapping[str, Any], model: Mapping[str, Any], data: Sequence[str]
) -> dict[str, Any]:
    """Everything that determines one pretraining run: the :class:`~slicewise.config.PretrainConfig` (the
    study's ``extras.pretrain.config`` with the fine-tuning encoder, k, first-layer strategy, colors, the
    arm's start point and the cell's seed) and the unlabelled volumes. Not the training fraction."""
    start = str(arm.get("start", "random"))
    if start not in ("random", "imagenet"):
        raise ConfigError(f"study {ctx.study.name}: extras.pretrain.arms start {start!r}: use random or imagenet")
    keys = ("encoder", "in_slices", "channel_init", "colors", "img_size")
    fixed = {
        "model": {**{k: model[k] for k in keys if model.get(k) is not None}, "weights": start},
        "seed": int(ctx.cell.params.get("seed", 0)),
    }
    config = deep_merge(json.loads(json.dumps((ctx.study.extras.get("pretrain") or {}).get("config") or {})), fixed)
    return {"config": config, "data": [str(p) for p in data]}


def run_pretraining(data: Sequence[str], out: Path, config: Mapping[str, Any], resume: bool) -> Path:
    """One pretraining run (:func:`slicewise.pretrain`) into ``out``; the encoder weights file."""
    return Path(pretrain(list(data), out=out, config=dict(config), resume=resume).weights)


def pretrained_encoder(
    ctx: CellContext, level: str, spec: Mapping[str, Any], timeout_s: float = 7 * 24 * 3600.0
) -> tuple[Path, bool]:
    """The weights file of the pretraining run ``spec`` and whether this call computed it.

    Cached in ``OUT/pretrain/<level>-seed<seed>-<fingerprint>/`` (claimed while computed; a crashed
    run resumes from its checkpoint). A concurrent process computing the same run is waited for."""
    out = ctx.workdir.parent.parent
    ident = {**spec, "data": [_relative(p, out) for p in spec["data"]]}  # a moved study folder keeps its cache
    folder = out / PRETRAIN_DIR / f"{level}-seed{spec['config']['seed']}-{json_hash(ident, 10)}"
    weights = folder / WEIGHTS_NAME
    deadline = time.monotonic() + timeout_s
    while True:
        if weights.is_file():
            return weights, False
        try:
            with claim_output(folder):
                if weights.is_file():
                    return weights, False
                resume = (folder / "checkpoints" / "last.ckpt").is_file()
                produced = run_pretraining(spec["data"], folder, spec["config"], resume)
                if produced.resolve() != weights.resolve():
                    raise InputError(f"pretraining wrote {produced}, expected {weights}")
                write_json(folder / "spec.json", dict(spec), overwrite=True)
                return weights, True
        except InputError:
            if not lock_path(folder).exists() or time.monotonic() > deadline:
                raise
            time.sleep(WAIT_POLL_S)  # another process computes this run: wait for its weights


def _relative(path: str, root: Path) -> str:
    """``path`` relative to ``root`` when it lies inside it (prepared data in the study folder), else as given."""
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def use_pretrained(ctx: CellContext, config: dict[str, Any], data: Sequence[str]) -> dict[str, Any]:
    """When the cell's ``weights`` level is a self-supervised arm: pretrain (or reuse) and point
    ``config.model.weights`` at the encoder file. Returns info for the cell's result."""
    level = str(ctx.cell.params.get("weights", ""))
    arms = pretrain_arms(ctx)
    if level not in arms:
        return {}
    spec = pretrain_spec(ctx, arms[level], config["model"], data)
    weights, computed = pretrained_encoder(ctx, level, spec)
    config["model"]["weights"] = str(weights)
    return {
        "pretrained": str(weights),
        "pretrain_computed": computed,
        "pretrain_start": spec["config"]["model"]["weights"],
    }


def _unlabelled(ctx: CellContext) -> list[str]:
    return [str(ctx.path(p)) for p in (ctx.study.extras.get("pretrain") or {}).get("unlabelled") or []]


def cell_pretraining(ctx: CellContext) -> dict[str, Any]:
    """Fine-tune one weight source on one training fraction: on the EM stack of ``data.raw`` when the
    study names one (:func:`cell_pretraining_em`), else on MoNuSeg (:func:`cell_pretraining_monuseg`)."""
    return cell_pretraining_em(ctx) if "raw" in ctx.study.data else cell_pretraining_monuseg(ctx)


def cell_pretraining_em(ctx: CellContext) -> dict[str, Any]:
    """Fine-tune one weight source on one fraction of the training slices of the study's EM stack; on the
    held-out ``data.test_z`` slices: Dice/IoU of ``extras.target_class`` (default 1) and their means, and,
    with ``data.interior_class``, the adapted Rand error and VOI of the connected interior regions."""
    d, ex = ctx.study.data, ctx.study.extras
    entries, raw, classes = em_volume(ctx)
    config = cell_config(ctx, entries)
    pinfo = use_pretrained(ctx, config, [entries["raw"], *_unlabelled(ctx)])
    model, info = train_model(ctx, config)
    z0, z1 = (int(v) for v in d["test_z"])
    probs = predict_range(model, raw, z0, z1, ex.get("predict", {}))
    pred = probs.argmax(0).astype(np.uint8)
    gt = classes[z0:z1]
    recs: list[Record] = semantic_metrics(pred, gt, int(ex.get("target_class", 1)))
    if d.get("interior_class") is not None:
        interior = int(d["interior_class"])
        inst = evaluate(
            membranes_to_neurons(pred, interior=interior), membranes_to_neurons(gt, interior=interior), kind="instance"
        )["volume"]
        recs += [record(k, inst[k]) for k in ("are", "voi_split", "voi_merge")]
    return {"metrics": recs, "info": {**info, **pinfo}}


def cell_pretraining_monuseg(ctx: CellContext) -> dict[str, Any]:
    """Fine-tune one weight source on one training fraction; per test image: nucleus Dice/IoU, and
    AP-50/75 and ARE of the nuclei (4-connected components of the prediction, scored by mean P).
    Self-supervised arms pretrain on all training tiles (train and validation, without labels)."""
    from skimage.measure import label

    ex = ctx.study.extras
    split = monuseg_split(ctx)
    config = cell_config(ctx, split["entries"])
    if not split["rgb"]:
        config["model"].update(colors=1, channel_init="uniform")
    pinfo = use_pretrained(ctx, config, [split["entries"]["raw"], *_unlabelled(ctx)])
    model, info = train_model(ctx, config)
    recs: list[Record] = []
    for test in ("in_domain", "out_of_domain"):
        for name, img, inst in split[test]:
            probs = predict_range(model, img[None], 0, 1, ex.get("predict", {}))
            pred = probs.argmax(0)
            recs += semantic_metrics(pred, (inst[None] > 0).astype(np.uint8), 1, test=test, image=name)
            ev = evaluate(label(pred[0] > 0, connectivity=1), inst, kind="instance", prob=probs[:, 0])["volume"]
            recs += [record(k, ev[k], test=test, image=name) for k in ("ap50", "ap75", "are")]
    info["rgb"] = split["rgb"]
    return {"metrics": recs, "info": {**info, **pinfo}}
