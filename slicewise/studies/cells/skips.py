"""The ``skips`` recipe: one skip mask; IoU in-domain and under intensity shifts, Hellinger per layer
(bias-corrected ``hellinger``, with ``hellinger_raw`` and ``hellinger_null``; see
:mod:`slicewise.diagnostics.hellinger`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from slicewise.data.shifts import apply_shift, parse_shift
from slicewise.data.stacking import context_range, to_unit_float
from slicewise.diagnostics import shift_report
from slicewise.studies.cells.common import (
    Record,
    cell_config,
    em_volume,
    predict_range,
    record,
    semantic_metrics,
    train_model,
)
from slicewise.studies.grid import CellContext


def cell_skips(ctx: CellContext) -> dict[str, Any]:
    """Fine-tune one skip mask; IoU in-domain and under each shift; Hellinger per layer and shift."""
    d, ex = ctx.study.data, ctx.study.extras
    entries, raw, classes = em_volume(ctx)
    config = cell_config(ctx, entries)
    z0, z1 = (int(v) for v in d["test_z"])
    cls = int(ex.get("target_class", 1))
    model, info = train_model(ctx, config)
    gt = classes[z0:z1]
    recs: list[Record] = []
    pred = predict_range(model, raw, z0, z1, ex.get("predict", {})).argmax(0)
    recs += semantic_metrics(pred, gt, cls, test="in_domain", shift="none")
    unit = to_unit_float(raw)
    for text in ex.get("shifts", []):
        name, strength = parse_shift(text)
        shifted = np.asarray(apply_shift(unit, name, strength, seed=0), dtype=np.float32)
        pred = predict_range(model, shifted, z0, z1, ex.get("predict", {})).argmax(0)
        recs += semantic_metrics(pred, gt, cls, test="shifted", shift=f"{name}={strength:g}")
    a, b = context_range(z0, z1, raw.shape[0], model.in_slices)
    hs = {"n_resamples": 0, **dict(ex.get("hellinger", {}))}  # the study's CIs are over seeds, not tiles
    rep = shift_report(model, raw[a:b], shifts=list(ex.get("shifts", [])), seed=int(config.get("seed", 0)), **hs)
    for mres in rep["models"].values():  # bias-corrected distance (ranked, plotted), raw and null baseline beside it
        for label, layers in mres["scores"].items():
            for layer, v in layers.items():
                recs += [
                    record("hellinger", v, shift=label, layer=layer),
                    record("hellinger_raw", mres["raw"][label][layer], shift=label, layer=layer),
                    record("hellinger_null", mres["null"][layer], shift=label, layer=layer),
                    record("values_per_channel", mres["values_per_channel"][layer], shift=label, layer=layer),
                ]
    return {"metrics": recs, "info": info}
