"""Study files: the :class:`Study` model (with :class:`Figure`), finding and loading them.

A study file (YAML; see ``slicewise/studies/*.yaml`` and docs/studies.md) declares

- ``cell``: what one cell does (a name in :data:`slicewise.studies.cells.CELL_KINDS`, or
  ``package.module:function`` for your own),
- ``data_root`` + ``data``: where the data lies (paths relative to ``data_root``; override with
  ``--data-root`` or ``SLICEWISE_DATA_ROOT``),
- ``base``: the base training config (sections of :class:`slicewise.config.TrainConfig`),
- ``presets``: named levels of an axis, each a config fragment deep-merged into ``base``
  (e.g. ``encoder: {sam: {model: {encoder: samvit_base_patch16, img_size: 256}}}``),
- ``grid``: axis → levels (encoder, weights, channel_init, skips, fraction, seed, or any dotted
  config key); cells are the Cartesian product in file order (last axis fastest),
- ``extras``: study-specific settings (shifts, attribution method, ...),
- ``comparisons``: which axis, baseline level vs others, metric, paired over what (see
  :class:`slicewise.studies.stats.Comparison`), ``figures``: profile plots, ``stats``: alpha etc.,
- ``smoke``: overrides deep-merged over the file for ``--smoke`` (tiny steps and crops).
"""

from __future__ import annotations

import importlib.resources
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field

from slicewise.config import (
    StrictModel,
    deep_merge,
    parse_overrides,
    read_yaml_mapping,
    validate_with_overrides,
)
from slicewise.data.io.outputs import atomic_path
from slicewise.errors import ConfigError, InputError
from slicewise.studies.stats import Comparison, StatsSettings
from slicewise.utils.inputs import check_input_path

DATA_ROOT_ENV = "SLICEWISE_DATA_ROOT"


class Figure(StrictModel):
    """A profile plot: mean ± CI of ``metric`` against label ``x``, one line per ``hue`` level,
    one panel per ``facet`` level (e.g. slice shares per slice, Hellinger per layer)."""

    metric: str
    x: str
    hue: str | None = None
    facet: str | None = None
    where: dict[str, Any] = Field(default_factory=dict)
    title: str = ""


class Study(StrictModel):
    """A study file after the smoke overrides are applied (see the module docstring)."""

    name: str
    description: str = ""
    cell: str
    data_root: str = "../shared/data"
    data: dict[str, Any] = Field(default_factory=dict)
    requires: list[str] = Field(default_factory=list)
    base: dict[str, Any] = Field(default_factory=dict)
    presets: dict[str, dict[str, dict[str, Any]]] = Field(default_factory=dict)
    grid: dict[str, list[Any]]
    extras: dict[str, Any] = Field(default_factory=dict)
    comparisons: list[Comparison] = Field(default_factory=list)
    figures: list[Figure] = Field(default_factory=list)
    stats: StatsSettings = Field(default_factory=StatsSettings)
    smoke: dict[str, Any] = Field(default_factory=dict)


def packaged_studies() -> list[str]:
    """Names of the study files shipped with slicewise (``bias``, ``skips``, ...)."""
    root = importlib.resources.files("slicewise.studies")
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))


def resolve_study_path(name_or_path: str | os.PathLike) -> Path:
    """A YAML path as given, or a packaged study by name (``bias`` → slicewise/studies/bias.yaml); a FIFO, socket,
    device or symlink loop is refused before anything opens it."""
    p = check_input_path(name_or_path, "study")
    if p.is_file():
        return p
    if p.suffix not in (".yaml", ".yml") and str(name_or_path) in packaged_studies():
        return Path(str(importlib.resources.files("slicewise.studies") / f"{name_or_path}.yaml"))
    if p.is_dir():  # after the packaged names: a folder called "bias" (e.g. its --out) does not hide the study
        raise InputError(
            f"study {p} is a folder, not a study file: give the YAML file (packaged studies: "
            f"{', '.join(packaged_studies())})"
        )
    raise InputError(
        f"study {str(name_or_path)!r} is neither a file nor a packaged study; packaged: {', '.join(packaged_studies())}"
    )


def load_study(
    name_or_path: str | os.PathLike,
    smoke: bool = False,
    overrides: Sequence[str] | None = None,
    data_root: str | os.PathLike | None = None,
) -> Study:
    """Read a study file, apply ``smoke:`` (if ``smoke``) and ``key=value`` overrides, validate.

    ``data_root``: the ``--data-root`` option; else ``$SLICEWISE_DATA_ROOT``; else the file's value.
    """
    path = resolve_study_path(name_or_path)
    raw = read_yaml_mapping(path)
    if "cell" not in raw and "grid" not in raw:
        training = sorted(set(raw) & {"data", "model", "optim", "loss", "trainer", "augment"})
        hint = (
            f"it looks like a training config ({', '.join(training)}): train it with `slicewise train {path}`, or "
            if training
            else ""
        )
        raise ConfigError(
            f"{path} is not a study file (no 'cell' and no 'grid'): {hint}give a study file such as the "
            f"packaged {', '.join(packaged_studies())}, or write one with `slicewise study init`"
        )
    if smoke:
        extra = raw.get("smoke") or {}
        if not isinstance(extra, dict):
            raise ConfigError(f"{path.name}: 'smoke' must be a mapping of overrides")
        raw = deep_merge(raw, extra)
    raw = deep_merge(raw, parse_overrides(list(overrides or [])))
    if data_root is not None:
        raw["data_root"] = str(data_root)
    elif os.environ.get(DATA_ROOT_ENV):
        raw["data_root"] = os.environ[DATA_ROOT_ENV]
    study = validate_with_overrides(Study, raw, list(overrides or []), path.name)
    if not study.grid or any(not levels for levels in study.grid.values()):
        raise ConfigError(f"{path.name}: 'grid' needs at least one axis with at least one level")
    axes = set(study.grid)
    for comp in study.comparisons:
        if comp.axis not in axes:
            raise ConfigError(
                f"{path.name}: comparison axis {comp.axis!r} is not a grid axis ({', '.join(study.grid)})"
            )
        if str(comp.baseline) not in map(str, study.grid[comp.axis]):
            raise ConfigError(
                f"{path.name}: baseline {comp.baseline!r} is not a level of {comp.axis!r} "
                f"({', '.join(map(str, study.grid[comp.axis]))})"
            )
    return study


def check_data(study: Study) -> Path:
    """Resolve ``data_root`` and check that every file in ``requires`` exists (one-line error if not)."""
    root = Path(study.data_root).expanduser()
    for rel in study.requires:
        if not (root / rel).exists():
            raise InputError(
                f"study {study.name}: data file {root / rel} not found: pass --data-root DIR "
                f"(the folder holding {rel}) or set {DATA_ROOT_ENV}"
            )
    return root.resolve()


def default_out(name: str, smoke: bool = False) -> Path:
    """The folder a study run writes to when none is given: ``runs/study-<name>[-smoke]``."""
    return Path("runs") / f"study-{name}{'-smoke' if smoke else ''}"


def piped_study(text: str, out: str | os.PathLike | None = None, smoke: bool = False) -> Path:
    """A study file given on standard input (``slicewise study init ... | slicewise study - --smoke``), saved
    as ``<out>/study.yaml`` (default out: ``runs/study-<name>[-smoke]``) so that reruns, ``--gpus`` children
    and ``--report-only`` read the same file; returns its path. One line when the text is no study."""
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
    folder = Path(out) if out is not None else default_out(name, smoke)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "study.yaml"
    with atomic_path(path, overwrite=True) as tmp:
        tmp.write_text(text)
    return path
