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

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from slicewise.data import labelmap
from slicewise.errors import InputError

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
    from slicewise.data.roi import parse_range

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
    ``seeds``, ``method``, ``pretrained``; :func:`slicewise.studies.cells.pretraining.init_pretraining`)."""
    from slicewise.config import read_yaml_mapping
    from slicewise.data import check_labels, check_raw, open_volume
    from slicewise.data.sampling import split_z
    from slicewise.studies.schema import resolve_study_path

    if template == "pretraining":
        from slicewise.studies.cells.pretraining import init_pretraining

        return init_pretraining(raw, labels, train_z, test_z, label_map, **recipe)
    if template not in TEMPLATES:
        raise InputError(
            f"study init {template!r}: templates for your own EM stack are {', '.join(TEMPLATES)}, pretraining"
        )
    if recipe:
        raise InputError(
            f"study init {template}: --{' --'.join(sorted(recipe))} only apply to `study init pretraining`: drop them"
        )
    from slicewise.data.roi import parse_range

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
    val_range = [int(val[0]), int(val[-1]) + 1]
    mapping = parse_label_map(label_map) if isinstance(label_map, str) or label_map is None else dict(label_map)
    mapping, n_classes = _classes(lab, [(a, b), (c, d)], mapping)
    side = min(height, width) // 32 * 32
    if side < 64:
        raise InputError(f"slices of {height}×{width} pixels are too small for the {template} study: at least 64×64")
    patch = min(256, side)
    smoke_side = min(SMOKE_SIDE, side)
    y0, x0 = (height - smoke_side) // 2, (width - smoke_side) // 2

    study = read_yaml_mapping(resolve_study_path(template))
    stem = Path(_file_part(raw_path)).name.split(".")[0]
    study["name"] = f"{template}-{stem}"
    study["description"] = (
        f"{' '.join(str(study.get('description', '')).split()).replace('ISBI 2012', Path(_file_part(raw_path)).name)} "
        f"(the packaged `{template}` study re-pointed at {raw_path} by `slicewise study init`)"
    )
    study["data_root"] = "."
    study["requires"] = [_file_part(raw_path), _file_part(labels_path)]
    data = dict(study.get("data") or {})
    data.update(
        {
            "raw": raw_path,
            "labels": labels_path,
            "label_map": mapping,
            "crop": None,
            "train_z": [a, b],
            "test_z": [c, d],
        }
    )
    if template in ("bias", "emsam"):
        data["interior_class"] = 0
    if template == "emsam":
        data.pop("train_phantom", None), data.pop("test_phantom", None)
        data["mito_class"] = 2
        for preset in (study.get("presets") or {}).get("encoder", {}).values():
            if "img_size" in preset.get("model", {}):
                preset["model"]["img_size"] = patch
    study["data"] = data
    base = study.setdefault("base", {})
    base.setdefault("model", {})["classes"] = n_classes
    base.setdefault("data", {}).update({"patch_size": patch, "val_range": val_range})
    extras = study.setdefault("extras", {})
    if "predict" in extras:
        extras["predict"]["tile"] = patch
    if "attribution" in extras:
        extras["attribution"]["tile"] = min(int(extras["attribution"].get("tile", 128)), patch)
    smoke = study.setdefault("smoke", {})
    smoke["data"] = {"crop": [y0, y0 + smoke_side, x0, x0 + smoke_side], "test_z": [c, min(d, c + SMOKE_TEST_SLICES)]}
    smoke_base = smoke.setdefault("base", {}).setdefault("data", {})
    smoke_base.update({"val_range": list(val_range), "patch_size": min(64, smoke_side)})
    for section in ("predict", "attribution"):
        if section in smoke.get("extras", {}):
            smoke["extras"][section]["tile"] = min(int(smoke["extras"][section].get("tile", 64)), smoke_side)
    dropped = _drop_unobtainable(study)
    header = (
        f"# {study['name']}: the packaged `{template}` study re-pointed at your stack by `slicewise study init`.\n"
        f"# Asks:   {QUESTIONS[template]}\n"
        f"# Run:    slicewise study THIS_FILE.yaml --smoke   (minutes: checks the whole path), then without --smoke\n"
        f"# Data:   {raw_path} ({depth}×{height}×{width}); training reads slices {a}..{b - 1} "
        f"(validation centres {a + val_range[0]}..{a + val_range[1] - 1}), test slices {c}..{d - 1}\n"
        f"# Labels: {_labels_text(template, mapping, n_classes)}\n" + (f"# Dropped: {dropped}\n" if dropped else "")
    )
    text = header + yaml.safe_dump(study, sort_keys=False, default_flow_style=None, width=110, allow_unicode=True)
    _validate(text)
    return text


def _drop_unobtainable(study: dict[str, Any]) -> str:
    """Remove grid levels whose cells cannot get their weights here (:mod:`slicewise.studies.preflight`,
    e.g. ResNet ImageNet weights offline) from the full and the smoke grid; return the one line saying which
    (also printed as a warning), or "" when nothing was dropped. Refuses when an axis would be left empty."""
    from slicewise.studies.grid import grid_cells
    from slicewise.studies.preflight import describe, unobtainable_levels
    from slicewise.studies.schema import Study
    from slicewise.utils.trust import warn

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


def piped_study(text: str, out: str | os.PathLike | None = None, smoke: bool = False) -> Path:
    """A study file given on standard input (``slicewise study init ... | slicewise study - --smoke``), saved
    as ``<out>/study.yaml`` (default out: ``runs/study-<name>[-smoke]``) so that reruns, ``--gpus`` children
    and ``--report-only`` read the same file; returns its path. One line when the text is no study."""
    from slicewise.utils.atomic import atomic_path

    try:
        raw = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        raw = None
    if not isinstance(raw, dict) or "grid" not in raw:
        raise InputError(
            "study -: standard input holds no study file: pipe one in, e.g. `slicewise study init pretraining "
            "--raw RAW --labels LABELS --train-z 0:14 --test-z 16:20 | slicewise study - --smoke`"
        )
    name = str(raw.get("name") or "piped")
    folder = Path(out) if out is not None else Path("runs") / f"study-{name}{'-smoke' if smoke else ''}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "study.yaml"
    with atomic_path(path, overwrite=True) as tmp:
        tmp.write_text(text)
    return path


def _validate(text: str) -> None:
    """Load ``text`` back as a study file, plain and with ``--smoke``, and check its data files exist."""
    from slicewise.studies.schema import check_data, load_study

    fd, name = tempfile.mkstemp(suffix=".yaml", prefix="slicewise-study-")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        for smoke in (False, True):
            check_data(load_study(name, smoke=smoke))
    finally:
        os.unlink(name)
