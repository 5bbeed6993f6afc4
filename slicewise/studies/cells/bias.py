"""The ``bias`` recipe: first-layer strategy, Dice / ARE, and slice shares before and after fine-tuning."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from slicewise.data.stacking import context_range
from slicewise.diagnostics import attribution_report
from slicewise.diagnostics.weights_audit import audit_weights
from slicewise.metrics import evaluate, membranes_to_neurons
from slicewise.studies.cells.common import (
    Record,
    cell_config,
    em_volume,
    initial_model,
    predict_range,
    record,
    semantic_metrics,
    train_model,
)
from slicewise.studies.grid import CellContext


def _value(v: Any) -> float:
    return float(v["value"] if isinstance(v, Mapping) else v)


def _share_records(rep: Mapping[str, Any], stage: str) -> list[Record]:
    """Slice shares, MA, centre share and s_0 − s_{k−1} of an attribution report or weights audit."""
    recs = [record("share", _value(s), stage=stage, slice=c) for c, s in enumerate(rep["shares"])]
    recs += [
        record(name, _value(rep[key]), stage=stage)
        for name, key in (
            ("ma", "mirror_asymmetry"),
            ("centre_share", "centre_share"),
            ("pair_difference", "pair_difference"),
        )
    ]
    return recs


def cell_bias(ctx: CellContext) -> dict[str, Any]:
    """Fine-tune one first-layer strategy on the EM stack; Dice, ARE; slice shares before/after.

    Stages: ``weights`` (first-layer L1 shares of the adapted pretrained layer), ``before``
    (saliency of the network as built for fine-tuning, on the test slices), ``after`` (saliency
    after fine-tuning, same tiles).
    """
    d, ex = ctx.study.data, ctx.study.extras
    entries, raw, classes = em_volume(ctx)
    config = cell_config(ctx, entries)
    z0, z1 = (int(v) for v in d["test_z"])
    attr = dict(ex.get("attribution", {}))
    m = config["model"]
    recs: list[Record] = []
    audit = audit_weights(
        encoder=m["encoder"],
        weights=m.get("weights", "imagenet"),
        in_slices=m.get("in_slices", 3),
        channel_init=m.get("channel_init", "uniform"),
        img_size=m.get("img_size"),
    )
    recs += _share_records(audit, "weights")
    a, b = context_range(z0, z1, raw.shape[0], int(m.get("in_slices", 3)))
    test_raw = raw[a:b]
    seed = int(config.get("seed", 0))
    before = attribution_report(initial_model(config), test_raw, seed=seed, **attr)
    recs += _share_records(before, "before")
    model, info = train_model(ctx, config)
    after = attribution_report(model, test_raw, seed=seed, **attr)
    recs += _share_records(after, "after")
    probs = predict_range(model, raw, z0, z1, ex.get("predict", {}))
    pred = probs.argmax(0).astype(np.uint8)
    gt = classes[z0:z1]
    fg = int(attr.get("target_class", 1))
    recs += semantic_metrics(pred, gt, fg)
    interior = int(d.get("interior_class", 0))
    inst = evaluate(
        membranes_to_neurons(pred, interior=interior), membranes_to_neurons(gt, interior=interior), kind="instance"
    )["volume"]
    recs += [record(k, inst[k]) for k in ("are", "voi_split", "voi_merge")]
    return {"metrics": recs, "info": info}
