"""What one study cell does: train (fine-tune), predict the test data, evaluate, audit.

A cell function takes a :class:`~slicewise.studies.runner.CellContext` and returns
``{"metrics": [record, ...], "info": {...}}``; a record is ``{"metric": name, "value": float,
**labels}`` where labels (``test``, ``stage``, ``slice``, ``layer``, ``shift``, ...) become columns
of the tidy results table. Built-in kinds (:data:`CELL_KINDS`): ``bias``, ``skips``,
``pretraining``, ``emsam``.

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
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from slicewise.data.stacking import context_range
from slicewise.errors import ConfigError, InputError
from slicewise.studies.runner import CellContext, json_hash
from slicewise.utils import atomic_path

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
    from slicewise.config import TrainConfig, deep_merge, validate

    cfg = json.loads(json.dumps(ctx.study.base))
    for axis, value in ctx.cell.params.items():
        preset = ctx.study.presets.get(axis, {})
        if str(value) in preset:
            cfg = deep_merge(cfg, preset[str(value)])
        elif axis in AXIS_KEYS or "." in axis:
            _set_dotted(cfg, AXIS_KEYS.get(axis, axis), value)
        else:
            raise ConfigError(f"study {ctx.study.name}: grid axis {axis!r} is neither a known axis "
                              f"({', '.join(AXIS_KEYS)}), a dotted config key nor a preset")
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
    from slicewise.models import load_model
    from slicewise.train import train
    from slicewise.train.run import StaleRunError

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
        shutil.rmtree(run / "checkpoints", ignore_errors=True)
        (run / "last.pt").unlink(missing_ok=True)
    return model, {"train_dir": str(run), "model": str(best)}


def initial_model(config: Mapping[str, Any]) -> Any:
    """The network as fine-tuning builds it: same config, pretrained weights and seed (random parts
    such as the decoder are drawn from that seed, not necessarily bit-identical to the training run)."""
    import pytorch_lightning as pl

    from slicewise.config import TrainConfig, validate
    from slicewise.models import build_model

    cfg = validate(TrainConfig, dict(config))
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    return build_model(cfg.model).eval()


def shared_dir(ctx: CellContext, name: str, spec: Mapping[str, Any]) -> Path:
    """``OUT/data/<name>-<hash of spec>``: prepared data shared by all cells of a run."""
    return ctx.workdir.parent.parent / "data" / f"{name}-{json_hash(spec, 10)}"


def _write_once(path: Path, array: np.ndarray) -> Path:
    """Write ``array`` to ``path`` (TIFF) unless another cell already did."""
    from slicewise.data.io import write_volume

    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            write_volume(tmp, array)
    return path


def _read(path: Path) -> np.ndarray:
    from slicewise.data import open_volume

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
    raw, lab = _crop(_read(ctx.path(d["raw"])), d.get("crop")), _crop(_read(ctx.path(d["labels"])), d.get("crop"))
    label_map = {int(k): int(v) for k, v in (d.get("label_map") or {}).items()}
    z0, z1 = (int(v) for v in d.get("train_z", (0, raw.shape[0])))
    folder = shared_dir(ctx, "em", {k: d.get(k) for k in ("raw", "labels", "crop", "train_z")})
    entries: dict[str, Any] = {"raw": str(_write_once(folder / "raw.tif", raw[z0:z1])),
                               "labels": str(_write_once(folder / "labels.tif", lab[z0:z1])),
                               "label_map": label_map or None}
    classes = lab.copy()
    for k, v in label_map.items():
        classes[lab == k] = v
    return entries, raw, classes


def predict_range(model: Any, raw: np.ndarray, z0: int, z1: int, settings: Mapping[str, Any]) -> np.ndarray:
    """Probabilities (C, z1−z0, Y, X) of slices z0..z1−1, predicted with their context slices."""
    from slicewise.infer.predict import predict

    return predict(model, raw, roi=(slice(z0, z1),), **dict(settings))


def semantic_metrics(pred: np.ndarray, gt: np.ndarray, cls: int, **labels: Any) -> list[Record]:
    """Dice and IoU of class ``cls`` and their means over the classes present."""
    from slicewise.metrics import evaluate

    ev = evaluate(pred, gt, kind="semantic")["volume"]
    return [record("dice", ev["dice"].get(str(cls), float("nan")), **labels),
            record("iou", ev["iou"].get(str(cls), float("nan")), **labels),
            record("mean_dice", ev["mean_dice"], **labels), record("mean_iou", ev["mean_iou"], **labels)]


def _value(v: Any) -> float:
    return float(v["value"] if isinstance(v, Mapping) else v)


def _share_records(rep: Mapping[str, Any], stage: str) -> list[Record]:
    """Slice shares, MA, centre share and s_0 − s_{k−1} of an attribution report or weights audit."""
    recs = [record("share", _value(s), stage=stage, slice=c) for c, s in enumerate(rep["shares"])]
    recs += [record(name, _value(rep[key]), stage=stage) for name, key in
             (("ma", "mirror_asymmetry"), ("centre_share", "centre_share"), ("pair_difference", "pair_difference"))]
    return recs


# --------------------------------------------------------------------------- bias


def cell_bias(ctx: CellContext) -> dict[str, Any]:
    """Fine-tune one first-layer strategy on the EM stack; Dice, ARE; slice shares before/after.

    Stages: ``weights`` (first-layer L1 shares of the adapted pretrained layer), ``before``
    (saliency of the network as built for fine-tuning, on the test slices), ``after`` (saliency
    after fine-tuning, same tiles).
    """
    from slicewise.diagnostics import attribution_report
    from slicewise.diagnostics.weights_audit import audit_weights
    from slicewise.metrics import evaluate, membranes_to_neurons

    d, ex = ctx.study.data, ctx.study.extras
    entries, raw, classes = em_volume(ctx)
    config = cell_config(ctx, entries)
    z0, z1 = (int(v) for v in d["test_z"])
    attr = dict(ex.get("attribution", {}))
    m = config["model"]
    recs: list[Record] = []
    audit = audit_weights(encoder=m["encoder"], weights=m.get("weights", "imagenet"), in_slices=m.get("in_slices", 3),
                          channel_init=m.get("channel_init", "uniform"), img_size=m.get("img_size"))
    recs += _share_records(audit, "weights")
    a, b = context_range(z0, z1, raw.shape[0], int(m.get("in_slices", 3)))
    test_raw = raw[a:b]
    seed = int(config.get("seed", 0))
    before = attribution_report(initial_model(config), test_raw, seed=seed, **attr)
    recs += _share_records(before, "before")
    model, info = train_model(ctx, config)
    after = attribution_report(model, test_raw, seed=seed, **attr)
    recs += _share_records(after, "after")
    probs = predict_range(model, raw, z0, z1, ex.get("predict", {}))
    pred = probs.argmax(0).astype(np.uint8)
    gt = classes[z0:z1]
    fg = int(attr.get("target_class", 1))
    recs += semantic_metrics(pred, gt, fg)
    interior = int(d.get("interior_class", 0))
    inst = evaluate(membranes_to_neurons(pred, interior=interior), membranes_to_neurons(gt, interior=interior),
                    kind="instance")["volume"]
    recs += [record(k, inst[k]) for k in ("are", "voi_split", "voi_merge")]
    return {"metrics": recs, "info": info}


# --------------------------------------------------------------------------- skips


def cell_skips(ctx: CellContext) -> dict[str, Any]:
    """Fine-tune one skip mask; IoU in-domain and under each shift; Hellinger per layer and shift."""
    from slicewise.data.shifts import apply_shift, parse_shift
    from slicewise.data.stacking import to_unit_float
    from slicewise.diagnostics import shift_report

    d, ex = ctx.study.data, ctx.study.extras
    entries, raw, classes = em_volume(ctx)
    config = cell_config(ctx, entries)
    z0, z1 = (int(v) for v in d["test_z"])
    cls = int(ex.get("target_class", 1))
    model, info = train_model(ctx, config)
    gt = classes[z0:z1]
    recs: list[Record] = []
    pred = predict_range(model, raw, z0, z1, ex.get("predict", {})).argmax(0)
    recs += semantic_metrics(pred, gt, cls, test="in_domain", shift="none")
    unit = to_unit_float(raw)
    for text in ex.get("shifts", []):
        name, strength = parse_shift(text)
        shifted = np.asarray(apply_shift(unit, name, strength, seed=0), dtype=np.float32)
        pred = predict_range(model, shifted, z0, z1, ex.get("predict", {})).argmax(0)
        recs += semantic_metrics(pred, gt, cls, test="shifted", shift=f"{name}={strength:g}")
    a, b = context_range(z0, z1, raw.shape[0], model.in_slices)
    hs = {"n_resamples": 0, **dict(ex.get("hellinger", {}))}  # the study's CIs are over seeds, not tiles
    rep = shift_report(model, raw[a:b], shifts=list(ex.get("shifts", [])), seed=int(config.get("seed", 0)), **hs)
    for mres in rep["models"].values():
        for label, layers in mres["scores"].items():
            recs += [record("hellinger", v, shift=label, layer=layer) for layer, v in layers.items()]
    return {"metrics": recs, "info": info}


# --------------------------------------------------------------------------- pretraining


def _tcga_prefix(name: str) -> str:
    return "-".join(name.split("-")[:2])


def _tiles(img: np.ndarray, size: int) -> list[np.ndarray]:
    h, w = img.shape[:2]
    return [img[y:y + size, x:x + size] for y in range(0, h - size + 1, size) for x in range(0, w - size + 1, size)]


def monuseg_split(ctx: CellContext) -> dict[str, Any]:
    """Training tiles, in-domain test strips and out-of-domain images of the MoNuSeg subset.

    In-domain images (TCGA prefixes in ``data.in_domain``): the left part is cut into ``tile``²
    tiles, of which the last ``val_tiles`` validate (best checkpoint) and the rest train (the
    training fraction samples these); the right ``test_columns`` fraction of every image is the
    in-domain test set. Out-of-domain: whole images of ``data.out_of_domain``. Images are subsampled by ``scale``; ``color: gray`` averages RGB (the
    cell then trains a grayscale network: ``model.colors`` 1, ``channel_init`` uniform).
    """
    d = ctx.study.data
    img_dir, lab_dir = ctx.path(d["images"]), ctx.path(d["labels"])
    files = sorted(img_dir.glob("*.png"))
    if not files:
        raise InputError(f"no MoNuSeg images (*.png) in {img_dir}: pass --data-root DIR or set SLICEWISE_DATA_ROOT")
    scale, size = int(d.get("scale", 1)), int(d["tile"])
    rgb = d.get("color", "rgb") == "rgb"

    def load(f: Path) -> tuple[np.ndarray, np.ndarray]:
        img = _read(f)[0, ::scale, ::scale]
        inst = _read(lab_dir / f"{f.stem}_instances.tif")[0, ::scale, ::scale]
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
    folder = shared_dir(ctx, "monuseg", {k: d.get(k) for k in ("in_domain", "out_of_domain", "tile", "test_columns",
                                                               "val_tiles", "scale")} | {"rgb": rgb})
    raw = np.stack(train_x + val_x)
    lab = np.stack(train_y + val_y)
    entries = {"raw": str(_write_once(folder / "raw.tif", raw)), "labels": str(_write_once(folder / "labels.tif", lab)),
               "val_range": [len(train_x), len(train_x) + len(val_x)]}
    return {"entries": entries, "rgb": rgb, "in_domain": test_in, "out_of_domain": test_out}


def cell_pretraining(ctx: CellContext) -> dict[str, Any]:
    """Fine-tune one weight source on one training fraction; per test image: nucleus Dice/IoU, and
    AP-50/75 and ARE of the nuclei (4-connected components of the prediction, scored by mean P)."""
    from skimage.measure import label

    from slicewise.metrics import evaluate

    ex = ctx.study.extras
    split = monuseg_split(ctx)
    config = cell_config(ctx, split["entries"])
    if not split["rgb"]:
        config["model"].update(colors=1, channel_init="uniform")
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
    return {"metrics": recs, "info": info}


# --------------------------------------------------------------------------- emsam


def cell_emsam(ctx: CellContext) -> dict[str, Any]:
    """Fine-tune one encoder on the phantom (classes + boundary head), predict a held-out phantom.

    Neurons: seeded watershed on the boundary head inside 1 − P(membrane), 2-D per slice; ARE and
    VOI per slice (mean over slices; ground-truth 0 ignored). Mitochondria: 3-D connected
    components of P(class 2) > 0.5, scored by mean probability; AP-50 / AP-75 (MitoEM convention).
    """
    from slicewise.data.synthetic import make_phantom
    from slicewise.infer import segment
    from slicewise.metrics import evaluate

    d, ex = ctx.study.data, ctx.study.extras
    train_ph = d.get("train_phantom", {})
    config = cell_config(ctx, {"synthetic": {"shape": train_ph.get("shape", [32, 256, 256]),
                                             "seed": train_ph.get("seed", 0)}})
    model, info = train_model(ctx, config)
    tp = d.get("test_phantom", {})
    ph = make_phantom(shape=tuple(tp.get("shape", (8, 256, 256))), seed=int(tp.get("seed", 1000)))
    probs = predict_range(model, ph.raw, 0, ph.raw.shape[0], ex.get("predict", {}))
    n_cls = int(config["model"].get("classes", 3))
    interior = np.stack([1.0 - probs[1], probs[n_cls]])  # neurons: not membrane; the boundary head
    neurons = segment(interior, per_slice=True, channel_names=["interior", "boundary"],
                      **{"mode": "watershed", "use": "boundary", **ex.get("neurons", {}),
                         "foreground_channel": "interior", "boundary_channel": "boundary"})
    mito = segment(probs[:n_cls], per_slice=False, channel_names=[f"class{c}" for c in range(n_cls)],
                   **{"mode": "cc", "foreground_channel": 2, **ex.get("mitochondria", {})})
    ev_n = evaluate(neurons, ph.cells, kind="instance", per_slice=True)["slice_mean"]
    ev_m = evaluate(mito, ph.mitochondria, kind="instance", prob=probs[2])["volume"]
    recs = [record(k, ev_n[k], target="neurons") for k in ("are", "voi_split", "voi_merge")]
    recs += [record(k, ev_m[k], target="mitochondria") for k in ("ap50", "ap75", "ap")]
    return {"metrics": recs, "info": info}


CELL_KINDS: dict[str, Callable[[CellContext], Mapping[str, Any]]] = {
    "bias": cell_bias,
    "skips": cell_skips,
    "pretraining": cell_pretraining,
    "emsam": cell_emsam,
}
