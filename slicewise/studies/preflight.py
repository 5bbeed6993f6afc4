"""Before a grid starts: can every cell get its encoder weights?

A cell whose weights need the network (timm hub ImageNet / SA-1B weights, a registry download) fails
only after it has built its data and retried the download for about a minute; with many such cells a
grid wastes hours and reports nothing. :func:`check_weights` looks at every cell to run *before* the
first one starts, and refuses in one line naming the unobtainable weights, the grid levels that need
them and the fix; ``study init`` drops such levels from the file it writes (:func:`unobtainable_levels`).

Obtainable: ``random``; ``imagenet`` for EfficientNet-Lite0/1/2 (installed packages); ``imagenet`` for
other encoders when timm's file is in the Hugging Face or torch hub cache, or when downloads are allowed
(``SLICEWISE_OFFLINE`` unset) and the hub answers (one TCP connection, 3 s); a registry name when cached
or downloadable; an existing checkpoint file. A ``weights`` value that is none of these (e.g. a study's
own arm names) is left to the cell.
"""

from __future__ import annotations

import functools
import json
import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from slicewise.config import deep_merge
from slicewise.errors import ConfigError
from slicewise.models.weights import CHECKPOINT_SUFFIXES, LITE_PACKAGES, REGISTRY, cache_dir
from slicewise.studies.cells.common import AXIS_KEYS
from slicewise.studies.grid import Cell
from slicewise.studies.schema import Study
from slicewise.utils.cache import offline

HUB_HOST = ("huggingface.co", 443)
PROBE_TIMEOUT_S = 3.0


def cell_model(study: Study, cell: Cell) -> dict[str, Any]:
    """The ``model`` section of a cell's config: ``base``, then presets and axis values (as the cells merge them)."""
    cfg: dict[str, Any] = json.loads(json.dumps(study.base))
    for axis, value in cell.params.items():
        preset = study.presets.get(axis, {})
        if str(value) in preset:
            cfg = deep_merge(cfg, preset[str(value)])
        else:
            key = AXIS_KEYS.get(axis, axis)
            if key.startswith("model."):
                cfg.setdefault("model", {})[key.split(".", 1)[1]] = value
    return dict(cfg.get("model") or {})


@functools.lru_cache(maxsize=1)
def _hub_reachable() -> bool:
    try:
        with socket.create_connection(HUB_HOST, timeout=PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def _hub_cached(encoder: str) -> bool:
    """timm's pretrained file of ``encoder`` in the Hugging Face cache or the torch hub cache."""
    try:
        from timm.models import get_pretrained_cfg

        cfg = get_pretrained_cfg(encoder)
    except Exception:  # noqa: BLE001 - an encoder timm does not know: model building will say so
        return True
    if cfg is None:
        return True
    if getattr(cfg, "hf_hub_id", None):
        try:
            from huggingface_hub import try_to_load_from_cache

            for name in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"):
                if isinstance(try_to_load_from_cache(cfg.hf_hub_id, name), str):
                    return True
        except ImportError:
            pass
    url = getattr(cfg, "url", None)
    if url:
        import torch.hub

        if (Path(torch.hub.get_dir()) / "checkpoints" / url.split("/")[-1]).is_file():
            return True
    return False


def weights_problem(encoder: str, weights: str) -> str | None:
    """Why ``weights`` for ``encoder`` cannot be obtained here, or None when they can (see the module docstring)."""
    w = str(weights)
    if w == "random" or (w == "imagenet" and encoder in LITE_PACKAGES):
        return None
    if w == "imagenet":
        if _hub_cached(encoder):
            return None
        if offline():
            return "need timm's hub and downloads are off (SLICEWISE_OFFLINE)"
        return None if _hub_reachable() else f"need timm's hub, which does not answer ({HUB_HOST[0]})"
    if w in REGISTRY:
        src = REGISTRY[w]
        if src.url.startswith("file://") or (cache_dir() / w).is_dir():
            return None
        if offline():
            return "are not cached and downloads are off (SLICEWISE_OFFLINE)"
        return None
    path = Path(w).expanduser()
    if (path.suffix in CHECKPOINT_SUFFIXES or os.sep in w) and not path.is_file():
        return f"checkpoint {w} does not exist"
    return None


def unobtainable(study: Study, cells: Sequence[Cell]) -> dict[tuple[str, str], list[Cell]]:
    """(encoder, weights) → the cells that need them, for every pair :func:`weights_problem` refuses."""
    bad: dict[tuple[str, str], list[Cell]] = {}
    seen: dict[tuple[str, str], str | None] = {}
    for c in cells:
        m = cell_model(study, c)
        key = (str(m.get("encoder", "tf_efficientnet_lite0")), str(m.get("weights", "imagenet")))
        if key not in seen:
            seen[key] = weights_problem(*key)
        if seen[key] is not None:
            bad.setdefault(key, []).append(c)
    return bad


def unobtainable_levels(study: Study, cells: Sequence[Cell]) -> dict[str, list[str]]:
    """Grid axis → levels all of whose cells need unobtainable weights (what ``study init`` drops)."""
    bad_ids = {c.id for group in unobtainable(study, cells).values() for c in group}
    out: dict[str, list[str]] = {}
    for axis, levels in study.grid.items():
        for level in levels:
            members = [c for c in cells if str(c.params[axis]) == str(level)]
            if members and all(c.id in bad_ids for c in members):
                out.setdefault(axis, []).append(str(level))
    return out


def describe(study: Study, cells: Sequence[Cell]) -> str:
    """``resnet18/imagenet (need timm's hub …): encoder=resnet18, 30 cells; …`` for the unobtainable weights."""
    parts = []
    dropped = unobtainable_levels(study, cells)
    for (enc, w), group in unobtainable(study, cells).items():
        levels = {a: [v for v in vals if any(str(c.params[a]) == v for c in group)] for a, vals in dropped.items()}
        where = (
            "; ".join(f"{a}={','.join(v)}" for a, v in levels.items() if v)
            or f"cells {', '.join(str(c.index) for c in group[:5])}"
        )
        parts.append(f"{enc} weights={w} {weights_problem(enc, w)} ({where}, {len(group)} cells)")
    return "; ".join(parts)


def check_weights(study: Study, cells: Sequence[Cell]) -> None:
    """One-line :class:`ConfigError` when any of ``cells`` cannot get its weights (before the grid starts)."""
    if not unobtainable(study, cells):
        return
    raise ConfigError(
        f"study {study.name}: {describe(study, cells)}: no cell was started; drop those levels "
        f"(e.g. --set 'grid.encoder=[lite0]'), give local weights (--set "
        f"'presets.encoder.<level>.model.weights=/path/weights.pth'), or allow downloads"
    )
