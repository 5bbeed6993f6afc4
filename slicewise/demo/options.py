"""What ``slicewise demo`` settles without torch: its defaults, the checks of its options (the CLI runs them before
the heavy modules are imported, so a mistyped option is one line within a second) and the table it prints."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from slicewise.config import STRATEGY_NAMES
from slicewise.errors import InputError
from slicewise.utils import text_table
from slicewise.utils.atomic import check_writable_folder
from slicewise.utils.environment import environment_text
from slicewise.utils.table import num

MEMBRANE = 1
CLASS_NAMES = ("background", "membrane", "mitochondrion")
"""Class names of the demo's models (phantom: cytoplasm is the background; ISBI: cell interior is)."""
DEFAULT_STRATEGIES = ("rgb", "uniform")
K = 3  # slices per stack of the demo's models
VAL_FRACTION = 0.25  # the held-out last quarter of the stack
MIN_DEPTH = 3  # k = 3 needs 3 slices; split_z then keeps centre 0 for training and slice 2 held out
BATCH_SIZE = 4  # training patches per optimizer step
ATTRIBUTION_TILES = 24  # tiles of the held-out slices that the attribution shares average over


def default_out(raw: str | os.PathLike | None) -> Path:
    """The demo's output folder when none is given: ``slicewise-demo``, or ``slicewise-demo-<raw file name>``."""
    if raw is None:
        return Path("slicewise-demo")
    return Path(f"slicewise-demo-{Path(raw).name.split('.')[0] or 'data'}")


def check_demo_options(
    raw: str | None,
    labels: str | None,
    out: Path,
    strategies: tuple[str, ...],
    steps: int,
    patch: int,
    seed: int,
    overwrite: bool,
    batch_size: int = BATCH_SIZE,
    attribution_tiles: int = ATTRIBUTION_TILES,
) -> None:
    """Refuse, in one line with the fix, options the demo cannot run with (see :func:`slicewise.demo.run_demo`);
    reads no data and imports no torch."""
    _check_numbers(steps, patch, seed, batch_size, attribution_tiles)
    bad = [st for st in strategies if st not in STRATEGY_NAMES]
    if bad or not strategies:
        raise InputError(f"--strategy {', '.join(bad) or '(none)'}: choose from {', '.join(STRATEGY_NAMES)}")
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file, not a folder: choose a folder for the demo's outputs")
    if out.exists() and any(p for p in out.iterdir() if not p.name.startswith(".")) and not overwrite:
        raise InputError(f"output folder {out} is not empty: pass --overwrite or choose another --out")
    check_writable_folder(out.parent, what=f"demo folder {out}")
    if (raw is None) != (labels is None):
        raise InputError("pass both --raw and --labels (or neither, for the synthetic phantom)")


def _check_numbers(steps: int, patch: int, seed: int, batch_size: int, attribution_tiles: int) -> None:
    if steps < 1:
        raise InputError(f"--steps {steps}: the number of optimizer steps must be at least 1")
    if patch < 32 or patch % 32:
        raise InputError(f"--patch {patch}: the tile side must be a positive multiple of 32 (e.g. 128)")
    if seed < 0:
        raise InputError(f"--seed {seed}: seeds are non-negative integers")
    if batch_size < 1 or attribution_tiles < 1:
        raise InputError(f"batch_size ({batch_size}) and attribution_tiles ({attribution_tiles}) must be at least 1")


def data_name(data_section: dict[str, Any], shape: tuple[int, ...]) -> str:
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
