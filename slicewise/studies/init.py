"""``slicewise study init``: a ready study file for the user's own EM stack.

The packaged EM studies (``bias``, ``skips`` on ISBI 2012, ``emsam`` on the phantom) are rewritten by
:func:`init_study` for another grayscale Z×Y×X stack with labels, changing only what depends on the data
(each recipe's file opens with its own question and says what it scores in the user's classes; grid
levels whose encoder weights cannot be obtained here, e.g. ResNet ImageNet weights offline, are dropped
in one line, :mod:`slicewise.studies.preflight`):

- ``data``: absolute paths of RAW and LABELS (so the file works from any folder), ``label_map``,
  ``train_z`` (slices training may read: training and validation centres) and ``test_z`` (held-out
  slices, predicted with their context, never read by training);
- ``base.data.val_range``: the last quarter of ``train_z`` after a gap of r slices
  (:func:`slicewise.data.sampling.split_z`), in coordinates of the ``train_z`` sub-stack as the
  cells expect; ``base.data.patch_size`` / prediction and attribution tiles: at most the slice size;
  ``base.model.classes`` from the label map;
- ``smoke``: a central crop of at most 128×128 pixels and at most 4 test slices.

Labels: without ``label_map`` a file holding exactly {0, 255} is read in the ISBI 2012 convention
(0 = membrane → class 1, 255 = cell interior → class 0), any other file as class ids. The bias
study scores class 1 (Dice, attribution target) and the connected class-0 regions (adapted Rand
error), so map your boundary / membrane label to 1 and the interior to 0.

Leakage is refused: with k = 3 slices (r = 1) the test range and its context slices must lie outside
``train_z``. The file is validated by loading it back (plain and ``--smoke``) before it is returned.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from slicewise.config import PretrainMethodConfig, read_yaml_mapping, validate
from slicewise.data import check_labels, check_raw, labelmap, open_volume
from slicewise.data.roi import parse_range
from slicewise.data.sampling import split_z
from slicewise.errors import InputError, WeightsError
from slicewise.models.encoder_file import read_provenance
from slicewise.selfsup.run import WEIGHTS_NAME
from slicewise.selfsup.views import check_unlabelled
from slicewise.studies.grid import grid_cells
from slicewise.studies.preflight import describe, unobtainable_levels
from slicewise.studies.schema import Study, check_data, load_study, resolve_study_path
from slicewise.utils.trust import warn

TEMPLATES = ("bias", "skips", "emsam")
QUESTIONS = {
    "bias": "does pseudo-RGB pretraining bias which input slice the network attends to, and does a symmetric first "
    "layer (uniform / mirror) remove the bias at no cost in accuracy? (Molnar et al.)",
    "skips": "do pruned top skip connections help in-domain and under synthetic intensity shifts, and which layers "
    "are most susceptible to the shifts (bias-corrected Hellinger distance)? (Wilm et al.)",
    "emsam": "does a SAM ViT encoder with a U-shaped decoder segment EM instances better than a CNN U-Net? "
    "(Cheng et al.)",
}
"""The question each recipe asks, first line of the file ``study init`` writes."""


def _labels_text(template: str, mapping: Any, n_classes: int) -> str:
    """What the recipe scores, in the classes of the user's label map (header of the written file)."""
    classes = f"classes {mapping if mapping else 'as stored'}"
    if template == "bias":
        return (
            f"{classes}; class 1 is scored (membrane Dice, the attribution target), connected class-0 regions "
            f"are the cells (adapted Rand error)"
        )
    if template == "skips":
        return f"{classes}; class 1 is scored (IoU and Dice on the test slices, plain and under each synthetic shift)"
    mito = (
        "mitochondria: 3-D connected components of class 2 (AP-50/75)"
        if n_classes > 2
        else "no class 2, so no mitochondria scores"
    )
    return (
        f"{classes}; neurons: connected class-0 regions per slice (training target of the boundary head; "
        f"adapted Rand error, VOI); {mito}"
    )


CONTEXT = 1  # r of the packaged EM studies (k = 3 slices)
SMOKE_SIDE = 128
SMOKE_TEST_SLICES = 4


def parse_label_map(text: str | None) -> dict[int, int] | None:
    """``"0:1,255:0"`` (label value → class) → ``{0: 1, 255: 0}``; ``None``/empty → ``None``
    (:func:`slicewise.data.labelmap.parse_label_map`, the one parser: duplicate values refused)."""
    mapping = labelmap.parse_label_map(text, "--label-map")
    negative = [c for c in (mapping or {}).values() if c < 0]
    if negative:
        raise InputError(f"--label-map {text!r}: classes are non-negative integers, not {negative[0]}")
    return mapping


def _range(text: str, depth: int, what: str) -> tuple[int, int]:
    sl = parse_range(text, what)
    start = 0 if sl.start is None else sl.start
    stop = depth if sl.stop is None else sl.stop
    if not 0 <= start < stop <= depth:
        raise InputError(f"{what} {text}: need 0 <= START < STOP <= {depth} (the stack has {depth} slices)")
    return start, stop


def _path(spec: str) -> str:
    """An existing file or folder as an absolute path; ``file.h5:key`` keeps its key."""
    p = Path(spec)
    if p.exists():
        return str(p.resolve())
    head, sep, key = spec.rpartition(":")
    if sep and Path(head).exists():
        return f"{Path(head).resolve()}:{key}"
    raise InputError(f"{spec} does not exist: give the path of the volume (TIFF, image folder, file.h5:key, Zarr)")


def _file_part(spec: str) -> str:
    """``/a/file.h5:key`` → ``/a/file.h5``; a plain path as it is."""
    return spec if Path(spec).exists() else spec.rpartition(":")[0]


def _classes(
    labels: Any, ranges: list[tuple[int, int]], label_map: dict[int, int] | None
) -> tuple[dict[int, int] | None, int]:
    values: set[int] = set()
    for a, b in ranges:
        values |= {int(v) for v in np.unique(np.asarray(labels[a:b]))}
    if label_map is None:
        if values <= {0, 255} and 255 in values:
            label_map = {0: 1, 255: 0}
        else:
            if min(values) < 0:
                raise InputError(f"labels hold negative values {sorted(v for v in values if v < 0)}: pass --label-map")
            return None, max(2, max(values) + 1)
    missing = sorted(values - set(label_map))
    if missing:
        raise InputError(f"label value(s) {missing[:8]} are not in --label-map {label_map}: map every value to a class")
    return label_map, max(2, max(label_map.values()) + 1)


@dataclass(frozen=True)
class _Stack:
    """The user's stack as ``study init`` checked it: paths, shape, splits, classes and the patch sizes."""

    raw: str
    labels: str
    shape: tuple[int, int, int]
    train: tuple[int, int]
    test: tuple[int, int]
    val_range: list[int]
    mapping: dict[int, int] | None
    n_classes: int
    patch: int
    smoke_side: int


def init_study(
    template: str,
    raw: str,
    labels: str,
    train_z: str,
    test_z: str,
    label_map: str | dict[int, int] | None = None,
    **recipe: Any,
) -> str:
    """The YAML text of study ``template`` (``bias`` or ``skips``) re-pointed at RAW / LABELS; see the
    module docstring. Raises one-line :class:`InputError` / :class:`ConfigError` for unusable input.

    ``pretraining`` has its own recipe on top of these data checks (``recipe``: ``unlabelled``, ``fractions``,
    ``seeds``, ``method``, ``pretrained``; :func:`init_pretraining`)."""
    if template == "pretraining":
        return init_pretraining(raw, labels, train_z, test_z, label_map, **recipe)
    if template not in TEMPLATES:
        raise InputError(
            f"study init {template!r}: templates for your own EM stack are {', '.join(TEMPLATES)}, pretraining"
        )
    if recipe:
        raise InputError(
            f"study init {template}: --{' --'.join(sorted(recipe))} only apply to `study init pretraining`: drop them"
        )
    stack = _check_stack(template, raw, labels, train_z, test_z, label_map)
    study = read_yaml_mapping(resolve_study_path(template))
    _point_at(study, template, stack)
    dropped = _drop_unobtainable(study)
    (a, b), (c, d), val_range = stack.train, stack.test, stack.val_range
    header = (
        f"# {study['name']}: the packaged `{template}` study re-pointed at your stack by `slicewise study init`.\n"
        f"# Asks:   {QUESTIONS[template]}\n"
        f"# Run:    slicewise study THIS_FILE.yaml --smoke   (minutes: checks the whole path), then without --smoke\n"
        f"# Data:   {stack.raw} ({'×'.join(map(str, stack.shape))}); training reads slices {a}..{b - 1} "
        f"(validation centres {a + val_range[0]}..{a + val_range[1] - 1}), test slices {c}..{d - 1}\n"
        f"# Labels: {_labels_text(template, stack.mapping, stack.n_classes)}\n"
        + (f"# Dropped: {dropped}\n" if dropped else "")
    )
    text = header + yaml.safe_dump(study, sort_keys=False, default_flow_style=None, width=110, allow_unicode=True)
    _validate(text)
    return text


def _check_stack(
    template: str, raw: str, labels: str, train_z: str, test_z: str, label_map: str | dict[int, int] | None
) -> _Stack:
    """Open and check RAW / LABELS (the checks training applies), the z-ranges (no leakage), the classes and
    the slice size; one-line :class:`InputError` for anything unusable."""
    parse_range(train_z, "--train-z"), parse_range(test_z, "--test-z")  # syntax first: cheap, before any file is read
    raw_path, labels_path = _path(raw), _path(labels)
    vol, lab = open_volume(raw_path), open_volume(labels_path)
    if len(vol.shape) != 3:
        raise InputError(f"{raw}: the {template} study takes a grayscale Z×Y×X stack, got shape {tuple(vol.shape)}")
    if tuple(lab.shape) != tuple(vol.shape):
        raise InputError(
            f"{labels} has shape {tuple(lab.shape)} but {raw} has {tuple(vol.shape)}: give labels of the same stack"
        )
    check_raw(vol)  # the checks training applies (dtype, NaN/Inf, ...), before a study file is written
    check_labels(lab, vol.shape)
    depth, height, width = (int(s) for s in vol.shape)
    a, b = _range(train_z, depth, "--train-z")
    c, d = _range(test_z, depth, "--test-z")
    if not (c - CONTEXT >= b or d + CONTEXT <= a):
        raise InputError(
            f"--test-z {c}:{d} and its context slices ({CONTEXT} each side) overlap --train-z {a}:{b}: "
            f"leave a gap, e.g. --test-z {b + CONTEXT}:{max(d, b + CONTEXT + 1)}"
        )
    _, val = split_z(b - a, k=2 * CONTEXT + 1, dz=1, val_fraction=0.25)
    mapping = parse_label_map(label_map) if isinstance(label_map, str) or label_map is None else dict(label_map)
    mapping, n_classes = _classes(lab, [(a, b), (c, d)], mapping)
    side = min(height, width) // 32 * 32
    if side < 64:
        raise InputError(f"slices of {height}×{width} pixels are too small for the {template} study: at least 64×64")
    return _Stack(
        raw=raw_path,
        labels=labels_path,
        shape=(depth, height, width),
        train=(a, b),
        test=(c, d),
        val_range=[int(val[0]), int(val[-1]) + 1],
        mapping=mapping,
        n_classes=n_classes,
        patch=min(256, side),
        smoke_side=min(SMOKE_SIDE, side),
    )


def _point_at(study: dict[str, Any], template: str, stack: _Stack) -> None:
    """Rewrite the packaged study ``template`` (its YAML mapping, in place) for ``stack``: name, description,
    data section, classes, patch and tile sizes, and the smoke crop (a central square, the first test slices)."""
    stem = Path(_file_part(stack.raw)).name.split(".")[0]
    study["name"] = f"{template}-{stem}"
    study["description"] = (
        f"{' '.join(str(study.get('description', '')).split()).replace('ISBI 2012', Path(_file_part(stack.raw)).name)} "
        f"(the packaged `{template}` study re-pointed at {stack.raw} by `slicewise study init`)"
    )
    study["data_root"] = "."
    study["requires"] = [_file_part(stack.raw), _file_part(stack.labels)]
    data = dict(study.get("data") or {})
    data.update(
        {
            "raw": stack.raw,
            "labels": stack.labels,
            "label_map": stack.mapping,
            "crop": None,
            "train_z": list(stack.train),
            "test_z": list(stack.test),
        }
    )
    if template in ("bias", "emsam"):
        data["interior_class"] = 0
    if template == "emsam":
        data.pop("train_phantom", None), data.pop("test_phantom", None)
        data["mito_class"] = 2
        for preset in (study.get("presets") or {}).get("encoder", {}).values():
            if "img_size" in preset.get("model", {}):
                preset["model"]["img_size"] = stack.patch
    study["data"] = data
    base = study.setdefault("base", {})
    base.setdefault("model", {})["classes"] = stack.n_classes
    base.setdefault("data", {}).update({"patch_size": stack.patch, "val_range": stack.val_range})
    extras = study.setdefault("extras", {})
    if "predict" in extras:
        extras["predict"]["tile"] = stack.patch
    if "attribution" in extras:
        extras["attribution"]["tile"] = min(int(extras["attribution"].get("tile", 128)), stack.patch)
    _smoke(study, stack)


def _smoke(study: dict[str, Any], stack: _Stack) -> None:
    """The ``smoke:`` section for ``stack``: a central crop of at most :data:`SMOKE_SIDE` pixels, at most
    :data:`SMOKE_TEST_SLICES` test slices, patches and tiles that fit."""
    (_, height, width), side, (c, d) = stack.shape, stack.smoke_side, stack.test
    y0, x0 = (height - side) // 2, (width - side) // 2
    smoke = study.setdefault("smoke", {})
    smoke["data"] = {"crop": [y0, y0 + side, x0, x0 + side], "test_z": [c, min(d, c + SMOKE_TEST_SLICES)]}
    smoke_base = smoke.setdefault("base", {}).setdefault("data", {})
    smoke_base.update({"val_range": list(stack.val_range), "patch_size": min(64, side)})
    for section in ("predict", "attribution"):
        if section in smoke.get("extras", {}):
            smoke["extras"][section]["tile"] = min(int(smoke["extras"][section].get("tile", 64)), side)


def _drop_unobtainable(study: dict[str, Any]) -> str:
    """Remove grid levels whose cells cannot get their weights here (:mod:`slicewise.studies.preflight`,
    e.g. ResNet ImageNet weights offline) from the full and the smoke grid; return the one line saying which
    (also printed as a warning), or "" when nothing was dropped. Refuses when an axis would be left empty."""
    model = Study.model_validate({k: v for k, v in study.items() if k != "smoke"})
    cells = grid_cells(model)
    levels = unobtainable_levels(model, cells)
    if not levels:
        return ""
    grids = [study["grid"], *([study["smoke"]["grid"]] if "grid" in study.get("smoke", {}) else [])]
    for axis, bad in levels.items():
        for grid in grids:
            if axis in grid:
                grid[axis] = [v for v in grid[axis] if str(v) not in bad]
                if not grid[axis]:
                    raise InputError(
                        f"study init {study['name']}: no level of {axis} can get its weights here "
                        f"({describe(model, cells)}): allow downloads or give local weights"
                    )
    which = "; ".join(f"{a} {', '.join(v)}" for a, v in levels.items())
    line = (
        f"{which}, whose weights cannot be obtained here "
        f"({describe(model, cells)}); to keep them give local weights, e.g. "
        f"--set 'presets.encoder.LEVEL.model.weights=/path/weights.pth' and add them to the grid"
    )
    warn(f"study init: dropped {line}")
    return line


def _validate(text: str) -> None:
    """Load ``text`` back as a study file, plain and with ``--smoke``, and check its data files exist."""
    fd, name = tempfile.mkstemp(suffix=".yaml", prefix="slicewise-study-")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        for smoke in (False, True):
            check_data(load_study(name, smoke=smoke))
    finally:
        os.unlink(name)


# ----------------------------------------------------------------------------- `slicewise study init pretraining`

SSL_ARMS: dict[str, dict[str, str]] = {"ssl-scratch": {"start": "random"}, "ssl-imagenet": {"start": "imagenet"}}
"""The self-supervised arms ``study init pretraining`` writes: pretraining from scratch and from ImageNet."""

PRETRAIN_DEFAULTS: dict[str, Any] = {
    "method": {"name": "mocov2"},
    "data": {"patch_size": 128, "batch_size": 32},
    "trainer": {"max_steps": 2000, "val_every": 500},
}
PRETRAIN_SMOKE: dict[str, Any] = {
    "data": {"patch_size": 32, "batch_size": 4},
    "method": {"memory_bank": 64},
    "optim": {"warmup_steps": 0},
    "trainer": {"max_steps": 2, "val_every": 2, "log_every": 1, "precision": "32"},
}


def parse_fractions(text: str) -> list[float]:
    """``"0.05,0.1,0.25,1"`` → [0.05, 0.1, 0.25, 1.0]: distinct fractions in (0, 1], ascending."""
    try:
        values = sorted({float(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise InputError(
            f"--fractions {text!r}: give fractions in (0, 1] separated by commas, e.g. 0.05,0.1,0.25,1"
        ) from None
    if not values or not all(0.0 < v <= 1.0 for v in values):
        raise InputError(f"--fractions {text!r}: every labelled fraction must lie in (0, 1], e.g. 0.05,0.1,0.25,1")
    return values


def init_pretraining(
    raw: str,
    labels: str,
    train_z: str,
    test_z: str,
    label_map: str | dict[int, int] | None = None,
    unlabelled: Sequence[str] = (),
    fractions: str | Sequence[float] = "0.05,0.1,0.25,1",
    seeds: int = 3,
    method: str = "mocov2",
    pretrained: Sequence[str] = (),
) -> str:
    """The YAML text of the pretraining study on the user's EM stack (``slicewise study init pretraining``).

    Arms (``weights`` axis): ``random``, ``imagenet``, and the self-supervised ``ssl-scratch`` /
    ``ssl-imagenet`` (pretrained on the training slices of RAW plus the ``unlabelled`` volumes, from a
    random or an ImageNet start; see the module docstring), crossed with the labelled ``fractions``
    of the training slices and ``seeds`` seeds. ``pretrained``: encoder files of ``slicewise pretrain`` runs,
    each one more arm (``pretrained``, ``pretrained-2``, ...; the study's encoder, k, colors and first layer
    are then the files'). Data checks, splits, classes and the smoke crop are those
    of ``study init bias`` (:func:`init_study`); the comparisons test the gain of
    each self-supervised arm over ImageNet per fraction (Dice and adapted Rand error), the report draws
    it against the fraction and says where it stops being significant."""
    fracs = parse_fractions(fractions) if isinstance(fractions, str) else sorted(float(f) for f in fractions)
    if int(seeds) < 1:
        raise InputError(f"--seeds {seeds}: give at least 1 seed (3 or more for paired tests)")
    validate(PretrainMethodConfig, {"name": method}, "--method")
    extra = [_path(u) for u in unlabelled]
    for u in extra:
        if u == _path(raw):
            raise InputError(
                f"--unlabelled {u} is --raw itself: its training slices are pretrained on already, and all of "
                f"it would leak the test slices into pretraining; give other volumes"
            )
        _check_unlabelled(u)
    own, model = _pretrained_arms(pretrained)
    study = yaml.safe_load(init_study("bias", raw, labels, train_z, test_z, label_map))
    stem = Path(_file_part(study["data"]["raw"])).name.split(".")[0]
    depth = f"{study['data']['train_z'][0]}..{study['data']['train_z'][1] - 1}"
    study["name"] = f"pretraining-{stem}"
    study["description"] = (
        f"Initialization of a U-Net encoder for {Path(_file_part(study['data']['raw'])).name}: random, ImageNet, and "
        f"self-supervised {method} pretraining on this volume (training slices {depth}"
        f"{' and ' + str(len(extra)) + ' unlabelled volume(s)' if extra else ''}) from scratch and from ImageNet, "
        f"x labelled fractions {', '.join(f'{f:g}' for f in fracs)} of the training slices x {seeds} seed(s); "
        f"Dice and adapted Rand error on held-out slices, gain of domain pretraining over ImageNet per fraction "
        f"(paired t-test and Wilcoxon over seeds, Holm)."
    )
    study["cell"] = "pretraining"
    study["requires"] = [*study["requires"], *(_file_part(u) for u in extra)]
    study["base"].setdefault("model", {}).update({"channel_init": "uniform", **model})
    arms = ["random", "imagenet", *SSL_ARMS, *own]
    if own:
        study["presets"] = {"weights": {name: {"model": {"weights": path}} for name, path in own.items()}}
    study["grid"] = {"weights": arms, "fraction": fracs, "seed": list(range(int(seeds)))}
    predict = study.get("extras", {}).get("predict", {"tile": study["base"]["data"]["patch_size"], "overlap": 0.25})
    study["extras"] = {
        "predict": predict,
        "target_class": 1,
        "pretrain": {
            "arms": json.loads(json.dumps(SSL_ARMS)),
            "unlabelled": extra,
            "config": {**PRETRAIN_DEFAULTS, "method": {"name": method}},
        },
    }
    study["comparisons"] = [
        {
            "name": "Dice gain of domain pretraining over ImageNet",
            "axis": "weights",
            "baseline": "imagenet",
            "levels": [*SSL_ARMS, *own],
            "metric": "dice",
            "per": ["fraction"],
            "pair_by": ["seed"],
        },
        {
            "name": "adapted Rand error of domain pretraining vs ImageNet",
            "axis": "weights",
            "baseline": "imagenet",
            "levels": [*SSL_ARMS, *own],
            "metric": "are",
            "per": ["fraction"],
            "pair_by": ["seed"],
            "higher_is_better": False,
        },
        {
            "name": "Dice of ImageNet vs random initialization",
            "axis": "weights",
            "baseline": "random",
            "levels": ["imagenet"],
            "metric": "dice",
            "per": ["fraction"],
            "pair_by": ["seed"],
        },
    ]
    study["figures"] = [
        {"metric": "dice", "x": "fraction", "hue": "weights", "title": "Dice vs labelled fraction"},
        {"metric": "are", "x": "fraction", "hue": "weights", "title": "adapted Rand error vs labelled fraction"},
    ]
    smoke = study.setdefault("smoke", {})
    smoke["grid"] = {"weights": list(arms), "fraction": [fracs[-1]], "seed": [0]}
    smoke.setdefault("extras", {})["pretrain"] = {"config": json.loads(json.dumps(PRETRAIN_SMOKE))}
    smoke["extras"]["predict"] = {"tile": min(128, int(smoke["base"]["data"]["patch_size"]) * 2), "overlap": 0.25}
    smoke["extras"].pop("attribution", None)
    header = (
        f"# {study['name']}: does self-supervised pretraining on your own volume beat ImageNet, and up to which "
        f"label budget?\n"
        f"# Written by `slicewise study init pretraining`. Run: slicewise study THIS_FILE.yaml --smoke (checks the "
        f"whole path), then without --smoke.\n"
        f"# Pretraining runs once per self-supervised arm and seed (OUT/pretrain/) and is shared by all fractions.\n"
        f"# Data: {study['data']['raw']}; training slices {depth}, test slices "
        f"{study['data']['test_z'][0]}..{study['data']['test_z'][1] - 1}"
        f"{'; unlabelled: ' + ', '.join(extra) if extra else ''}\n"
        f"# Labels: classes {study['data'].get('label_map') or 'as stored'}; class 1 is scored (Dice, IoU), connected "
        f"class-0 regions are the cells (adapted Rand error, VOI)\n"
        + "".join(f"# Arm {name}: {path}\n" for name, path in own.items())
    )
    text = header + yaml.safe_dump(study, sort_keys=False, default_flow_style=None, width=110, allow_unicode=True)
    _validate(text)
    return text


def _pretrained_arms(files: Sequence[str]) -> tuple[dict[str, str], dict[str, Any]]:
    """Weights levels for encoder files of ``slicewise pretrain`` (``pretrained``, ``pretrained-2``, ...) and the
    model settings they fix (encoder, k, colors, first layer; the files must agree on them)."""
    arms: dict[str, str] = {}
    model: dict[str, Any] = {}
    for i, spec in enumerate(files):
        p = Path(spec)
        try:
            prov = read_provenance(p) if p.is_file() else None
        except WeightsError:
            prov = None
        if prov is None:
            raise InputError(
                f"--pretrained {spec}: not an encoder file written by `slicewise pretrain` "
                f"(give <run folder>/{WEIGHTS_NAME})"
            )
        these = {k: prov[k] for k in ("encoder", "in_slices", "colors", "channel_init") if k in prov}
        if model and these != model:
            differ = ", ".join(f"{k} {model.get(k)} vs {these.get(k)}" for k in these if these.get(k) != model.get(k))
            raise InputError(
                f"--pretrained {spec}: its encoder settings differ from the first file's ({differ}): "
                f"give files of one encoder, k and first-layer strategy"
            )
        model = these
        arms["pretrained" if i == 0 else f"pretrained-{i + 1}"] = str(p.resolve())
    if model.get("colors", 1) != 1:
        raise InputError(
            f"--pretrained {files[0]}: pretrained on {model['colors']} colors per slice; the study "
            f"takes a grayscale stack: pretrain on it with model.colors=1"
        )
    return arms, {k: v for k, v in model.items() if k != "colors"}


def _check_unlabelled(path: str) -> None:
    """An unlabelled volume must open as a grayscale Z×Y×X stack of intensities, not labels (one line otherwise)."""
    vol = open_volume(path)
    if len(vol.shape) != 3:
        raise InputError(f"--unlabelled {path}: need a grayscale Z×Y×X stack, got shape {tuple(vol.shape)}")
    check_raw(vol, what=f"--unlabelled {path}")
    check_unlabelled(vol, f"--unlabelled {path}")
