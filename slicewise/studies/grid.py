"""The grid of a study: cells (Cartesian product of the axes), their ids, fingerprints and status files.

Each cell runs in ``OUT/cells/<cell-id>/``; ``result.json`` is written atomically at the very end,
so a cell is done iff its ``result.json`` exists; a failed attempt leaves ``error.txt``. The
fingerprint hashes everything that determines a cell's result, so a finished cell computed from
another configuration is detected (:func:`check_fingerprints`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field

from slicewise.errors import ConfigError, InputError
from slicewise.studies.schema import Study
from slicewise.utils.inputs import check_input_path
from slicewise.utils.validation import MetadataModel, parse_metadata

RESULT = "result.json"
ERROR = "error.txt"


@dataclass(frozen=True)
class Cell:
    """One point of the grid: position, folder name and axis values."""

    index: int
    id: str
    params: dict[str, Any]


@dataclass
class CellContext:
    """What a cell function gets: the resolved study, its cell, its folder and the data root."""

    study: Study
    cell: Cell
    workdir: Path
    data_root: Path
    smoke: bool = False

    def path(self, relative: str) -> Path:
        """A data file named in the study, relative to ``data_root``."""
        return self.data_root / relative


CellFn = Callable[[CellContext], Mapping[str, Any]]


def _slug(value: Any) -> str:
    return re.sub(r"[^A-Za-z0-9.=+-]+", "_", str(value)).strip("_") or "x"


def cell_id(params: Mapping[str, Any]) -> str:
    """Folder name of a cell: ``channel_init-rgb__seed-0`` (hashed suffix when very long)."""
    text = "__".join(f"{_slug(k)}-{_slug(v)}" for k, v in params.items())
    if len(text) > 120:
        text = text[:100] + "-" + hashlib.sha1(text.encode()).hexdigest()[:10]
    return text


def grid_cells(study: Study) -> list[Cell]:
    """All cells: the Cartesian product of the grid axes in file order (last axis fastest)."""
    axes = list(study.grid)
    cells = []
    for i, values in enumerate(itertools.product(*(study.grid[a] for a in axes))):
        params = dict(zip(axes, values))
        cells.append(Cell(i, cell_id(params), params))
    return cells


def parse_cells(spec: str | None, n: int) -> list[int]:
    """``"0-3,7"`` → [0, 1, 2, 3, 7]; ``None`` → all; indices outside 0..n-1 are a one-line error."""
    if spec is None or spec.strip() == "":
        return list(range(n))
    out: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise ConfigError(f"--cells {spec!r}: use indices and ranges like 0-3,7")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise ConfigError(f"--cells {spec!r}: the range {part} is reversed: write it low-high, {hi}-{lo}")
        if hi >= n:
            raise ConfigError(f"--cells {spec!r}: cell {hi} does not exist, the study has cells 0-{n - 1}")
        out.extend(i for i in range(lo, hi + 1) if i not in out)
    return out


def json_hash(obj: Any, length: int = 16) -> str:
    """First ``length`` hex digits of the SHA-1 of ``obj`` as canonical JSON (sorted keys, ``str`` for the rest)."""
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:length]


def fingerprint(study: Study, cell: Cell) -> str:
    """Hash of everything that determines a cell's result (not the data location, not the grid size)."""
    presets = {a: study.presets[a].get(str(v)) for a, v in cell.params.items() if a in study.presets}
    payload = {
        "cell": study.cell,
        "data": study.data,
        "base": study.base,
        "extras": study.extras,
        "presets": presets,
        "params": cell.params,
    }
    return json_hash(payload)


def cell_dir(out: Path, cell: Cell) -> Path:
    """``OUT/cells/<cell-id>``."""
    return out / "cells" / cell.id


class MetricRecord(MetadataModel):
    """One metric of a cell: ``metric`` name, ``value`` (a number; NaN allowed), any label columns besides."""

    metric: str = Field(min_length=1)
    value: float


class CellResult(MetadataModel):
    """A cell's ``result.json`` (written by :func:`slicewise.studies.execute.run_cell`; untrusted when read back)."""

    fingerprint: str | None = None
    metrics: list[MetricRecord] = []
    info: dict[str, Any] = {}


def read_result(out: Path, cell: Cell) -> dict[str, Any] | None:
    """The cell's result.json validated (:class:`CellResult`), or None when the cell is not done. A damaged or
    hand-edited file (not JSON, a field of the wrong type) is one :class:`InputError` line naming the file and
    the field."""
    p = check_input_path(cell_dir(out, cell) / RESULT, "cell result")
    if not p.is_file():
        return None
    fix = f"delete {p} to compute the cell again"
    try:
        data = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise InputError(f"{p} is damaged ({type(err).__name__}): {fix}") from None
    return parse_metadata(CellResult, data, p, fix).model_dump()


def check_fingerprints(study: Study, out: Path, cells: Sequence[Cell], overwrite: bool = False) -> None:
    """Finished cells computed from another configuration: error, or (``overwrite``) mark them pending."""
    stale = []
    for c in cells:
        res = read_result(out, c)
        if res is not None and res.get("fingerprint") != fingerprint(study, c):
            stale.append(c)
    if stale and not overwrite:
        raise ConfigError(
            f"{out}: {len(stale)} finished cell(s) (e.g. cells/{stale[0].id}) were computed with another "
            f"study configuration: use another --out, or --overwrite to recompute them"
        )
    for c in stale:
        (cell_dir(out, c) / RESULT).unlink()
