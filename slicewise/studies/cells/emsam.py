"""The ``emsam`` recipe: encoder comparison on the synthetic EM phantom or, as ``study init emsam``
writes it, on the user's own labelled stack (neurons by watershed on a boundary head, mitochondria by
connected components)."""

from __future__ import annotations

from typing import Any

import numpy as np

from slicewise.data.io.formats import channel_name
from slicewise.data.synthetic import make_phantom
from slicewise.metrics import evaluate, membranes_to_neurons
from slicewise.segment import segment
from slicewise.studies.cells.common import cell_config, em_volume, predict_range, record, train_model
from slicewise.studies.grid import CellContext


def _test_data(ctx: CellContext) -> tuple[dict[str, Any], np.ndarray, int, int, np.ndarray, np.ndarray | None]:
    """(data entries of the training config, raw volume, test z0, z1, neuron ids, mitochondria ids or None).

    The user's stack (``data.raw`` / ``labels``, as ``study init emsam`` writes): training reads
    ``train_z``; the test slices ``test_z`` are scored against the connected ``interior_class`` regions
    per slice (neurons) and the 3-D connected components of ``mito_class`` (when the labels have it).
    Otherwise the phantom: training volume ``train_phantom``, test volume ``test_phantom``.
    """
    from scipy import ndimage

    d = ctx.study.data
    if d.get("raw"):
        entries, raw, classes = em_volume(ctx)
        z0, z1 = (int(v) for v in d["test_z"])
        gt = classes[z0:z1]
        cells = membranes_to_neurons(gt, interior=int(d.get("interior_class", 0)))
        mito_class = int(d.get("mito_class", 2))
        mito = ndimage.label(gt == mito_class)[0] if (gt == mito_class).any() else None
        return entries, raw, z0, z1, cells, mito
    train_ph, tp = d.get("train_phantom", {}), d.get("test_phantom", {})
    entries = {"synthetic": {"shape": train_ph.get("shape", [32, 256, 256]), "seed": train_ph.get("seed", 0)}}
    ph = make_phantom(shape=tuple(tp.get("shape", (8, 256, 256))), seed=int(tp.get("seed", 1000)))
    return entries, ph.raw, 0, ph.raw.shape[0], ph.cells, ph.mitochondria


def cell_emsam(ctx: CellContext) -> dict[str, Any]:
    """Fine-tune one encoder (classes + boundary head) on the phantom or the user's stack, predict the test data.

    Neurons: seeded watershed on the boundary head inside 1 − P(membrane), 2-D per slice; ARE and
    VOI per slice (mean over slices; ground-truth 0 ignored). Mitochondria (class 2, when the data
    have it): 3-D connected components of P(class 2) > 0.5, scored by mean probability; AP-50 / AP-75
    (MitoEM convention).
    """
    ex = ctx.study.extras
    entries, raw, z0, z1, cells, mito_gt = _test_data(ctx)
    config = cell_config(ctx, entries)
    model, info = train_model(ctx, config)
    probs = predict_range(model, raw, z0, z1, ex.get("predict", {}))
    n_cls = int(config["model"].get("classes", 3))
    interior = np.stack([1.0 - probs[1], probs[n_cls]])  # neurons: not membrane; the boundary head
    neurons = segment(
        interior,
        per_slice=True,
        channel_names=["interior", "boundary"],
        **{
            "mode": "watershed",
            "use": "boundary",
            **ex.get("neurons", {}),
            "foreground_channel": "interior",
            "boundary_channel": "boundary",
        },
    )
    ev_n = evaluate(neurons, cells, kind="instance", per_slice=True)["slice_mean"]
    recs = [record(k, ev_n[k], target="neurons") for k in ("are", "voi_split", "voi_merge")]
    if mito_gt is not None and n_cls > 2:
        mito = segment(
            probs[:n_cls],
            per_slice=False,
            channel_names=[channel_name(c) for c in range(n_cls)],
            **{"mode": "cc", "foreground_channel": 2, **ex.get("mitochondria", {})},
        )
        ev_m = evaluate(mito, mito_gt, kind="instance", prob=probs[2])["volume"]
        recs += [record(k, ev_m[k], target="mitochondria") for k in ("ap50", "ap75", "ap")]
    return {"metrics": recs, "info": info}
