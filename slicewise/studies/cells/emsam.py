"""The ``emsam`` recipe: encoder comparison on the synthetic EM phantom (neurons by watershed on a
boundary head, mitochondria by connected components)."""

from __future__ import annotations

from typing import Any

import numpy as np

from slicewise.studies.cells.common import cell_config, predict_range, record, train_model
from slicewise.studies.grid import CellContext


def cell_emsam(ctx: CellContext) -> dict[str, Any]:
    """Fine-tune one encoder on the phantom (classes + boundary head), predict a held-out phantom.

    Neurons: seeded watershed on the boundary head inside 1 − P(membrane), 2-D per slice; ARE and
    VOI per slice (mean over slices; ground-truth 0 ignored). Mitochondria: 3-D connected
    components of P(class 2) > 0.5, scored by mean probability; AP-50 / AP-75 (MitoEM convention).
    """
    from slicewise.data.synthetic import make_phantom
    from slicewise.infer import segment
    from slicewise.metrics import evaluate

    d, ex = ctx.study.data, ctx.study.extras
    train_ph = d.get("train_phantom", {})
    config = cell_config(ctx, {"synthetic": {"shape": train_ph.get("shape", [32, 256, 256]),
                                             "seed": train_ph.get("seed", 0)}})
    model, info = train_model(ctx, config)
    tp = d.get("test_phantom", {})
    ph = make_phantom(shape=tuple(tp.get("shape", (8, 256, 256))), seed=int(tp.get("seed", 1000)))
    probs = predict_range(model, ph.raw, 0, ph.raw.shape[0], ex.get("predict", {}))
    n_cls = int(config["model"].get("classes", 3))
    interior = np.stack([1.0 - probs[1], probs[n_cls]])  # neurons: not membrane; the boundary head
    neurons = segment(interior, per_slice=True, channel_names=["interior", "boundary"],
                      **{"mode": "watershed", "use": "boundary", **ex.get("neurons", {}),
                         "foreground_channel": "interior", "boundary_channel": "boundary"})
    mito = segment(probs[:n_cls], per_slice=False, channel_names=[f"class{c}" for c in range(n_cls)],
                   **{"mode": "cc", "foreground_channel": 2, **ex.get("mitochondria", {})})
    ev_n = evaluate(neurons, ph.cells, kind="instance", per_slice=True)["slice_mean"]
    ev_m = evaluate(mito, ph.mitochondria, kind="instance", prob=probs[2])["volume"]
    recs = [record(k, ev_n[k], target="neurons") for k in ("are", "voi_split", "voi_merge")]
    recs += [record(k, ev_m[k], target="mitochondria") for k in ("ap50", "ap75", "ap")]
    return {"metrics": recs, "info": info}

