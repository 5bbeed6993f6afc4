"""The ``pretraining`` recipe on a MoNuSeg subset: weight source × training fraction; nucleus Dice/IoU,
AP-50/75 and ARE in-domain and out-of-domain."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from slicewise.errors import ConfigError, InputError
from slicewise.studies.cells.common import (
    Record,
    cell_config,
    predict_range,
    read_array,
    record,
    semantic_metrics,
    shared_dir,
    train_model,
    write_once,
)
from slicewise.studies.grid import CellContext


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
    folder = shared_dir(ctx, "monuseg", {k: d.get(k) for k in ("in_domain", "out_of_domain", "tile", "test_columns",
                                                               "val_tiles", "scale")} | {"rgb": rgb})
    raw = np.stack(train_x + val_x)
    lab = np.stack(train_y + val_y)
    entries = {"raw": str(write_once(folder / "raw.tif", raw)), "labels": str(write_once(folder / "labels.tif", lab)),
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

