"""A fake cell for runner tests: deterministic metrics, a call log, failure on demand (no training)."""

from __future__ import annotations

import os

import numpy as np

from slicewise.studies.grid import CellContext


def fake_cell(ctx: CellContext) -> dict:
    """Append the cell id to ``extras.log``; fail when ``extras.fail_flag`` exists and the cell is listed."""
    from pathlib import Path

    ex = ctx.study.extras
    with open(ex["log"], "a") as f:
        f.write(ctx.cell.id + "\n")
    if ctx.cell.id in ex.get("fail", []) and Path(ex["fail_flag"]).exists():
        raise RuntimeError("simulated failure")
    p = ctx.cell.params
    rng = np.random.default_rng([int(p["seed"]), ctx.cell.index])
    effect = {"rgb": 0.0, "uniform": 0.05, "random": -0.1}[p["channel_init"]]
    recs = [{"metric": "dice", "value": 0.7 + effect + 0.02 * int(p["seed"]) + rng.normal(0, 0.005)}]
    recs += [
        {"metric": "share", "value": s, "slice": c, "stage": "after"}
        for c, s in enumerate([0.3, 0.4, 0.3] if p["channel_init"] != "rgb" else [0.25, 0.5, 0.25])
    ]
    return {"metrics": recs, "info": {"cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}}
