"""Quality signals while pretraining runs: embedding spread (collapse) and a k-NN probe on labelled slices.

- **Embedding std** (:func:`embedding_std`): the mean over dimensions of the standard deviation of the
  L2-normalized embeddings of a fixed batch (lightly's ``std_of_l2_normalized``). Embeddings spread over the
  unit sphere give about ``1/sqrt(dim)``; all samples mapped to one point give 0. The run warns once, in one
  line, when it falls below ``method.collapse_threshold / sqrt(dim)``; ``embedding_std_ratio`` (= std ·
  sqrt(dim)) is logged.
- **k-NN probe** (:class:`ProbeSet`, :func:`knn_score`): on a few labelled slices, ``data.probe_patches``
  patches per class are centered on pixels of that class (seeded choice, patches inside the slice); a
  patch's class is the class of its centre pixel; its embedding is the backbone's (globally pooled deepest
  map) of a ``probe_patch_size`` square 2.5D stack. Score: leave-one-out k-NN (cosine similarity, the
  ``probe_k`` nearest other patches vote) **balanced accuracy** over classes (chance = 1 / classes).
  The backbone runs in eval mode (BatchNorm running statistics), as fine-tuning starts from it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from lightly.utils.debug import std_of_l2_normalized
from torch import nn

from slicewise.data.stacking import stack_slices, to_unit_float
from slicewise.errors import InputError

__all__ = ["ProbeSet", "embed", "embedding_std", "knn_score"]


def embedding_std(embeddings: torch.Tensor) -> float:
    """Mean per-dimension std of the L2-normalized embeddings (B, D) (lightly's convention)."""
    return float(std_of_l2_normalized(embeddings.float()))


class ProbeSet:
    """Labelled probe patches ``x`` (N, k·C, s, s) in the raw dtype and their classes ``y`` (N,)."""

    def __init__(
        self,
        raw: Any,
        labels: Any,
        z: list[int] | None,
        k: int,
        dz: int,
        border: str,
        size: int,
        per_class: int,
        seed: int = 0,
        label_map: dict[int, int] | None = None,
    ) -> None:
        if tuple(labels.shape[:3]) != tuple(raw.shape[:3]):
            raise InputError(
                f"data.probe_labels have shape {tuple(labels.shape)} but the first raw volume is "
                f"{tuple(raw.shape[:3])}: give labels of the first raw volume"
            )
        depth, h, w = (int(s) for s in raw.shape[:3])
        if size > h or size > w:
            raise InputError(f"data.probe_patch_size {size} is larger than the slices ({h}x{w}): lower it")
        rng = np.random.default_rng(seed)
        half = size // 2
        slices = list(range(depth)) if z is None else [int(v) for v in z]
        bad = [v for v in slices if not 0 <= v < depth]
        if bad:
            raise InputError(f"data.probe_z {bad[:4]} lie outside the volume (depth {depth}): list labelled slices")
        points: dict[int, list[tuple[int, int, int]]] = {}
        for zz in slices:
            lab = np.asarray(labels[zz])
            if label_map is not None:  # values outside the map are left out (-1)
                keys = np.asarray(sorted(label_map), dtype=np.int64)
                pos = np.clip(np.searchsorted(keys, lab), 0, len(keys) - 1)
                lab = np.where(keys[pos] == lab, np.asarray([label_map[int(a)] for a in keys])[pos], -1)
            inner = lab[half : h - size + half + 1, half : w - size + half + 1]
            for c in np.unique(inner):
                if c < 0:
                    continue
                ys, xs = np.nonzero(inner == c)
                take = rng.choice(len(ys), size=min(len(ys), per_class), replace=False)
                points.setdefault(int(c), []).extend((zz, int(ys[t]), int(xs[t])) for t in take)
        if len(points) < 2:
            raise InputError(
                f"data.probe_labels give {len(points)} class(es) on the probe slices: the probe needs at "
                f"least 2 classes"
            )
        xs_, ys_ = [], []
        for c, pts in sorted(points.items()):
            chosen = [pts[i] for i in rng.choice(len(pts), size=min(len(pts), per_class), replace=False)]
            for zz, y0, x0 in chosen:
                xs_.append(
                    np.asarray(stack_slices(raw, zz, k, dz, border, yx=(slice(y0, y0 + size), slice(x0, x0 + size))))
                )
                ys_.append(c)
        self.x = torch.from_numpy(np.stack(xs_))
        self.y = torch.as_tensor(ys_, dtype=torch.int64)
        self.classes = sorted(points)

    def __len__(self) -> int:
        return len(self.y)


@torch.no_grad()
def embed(backbone: nn.Module, x: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """Backbone embeddings (N, D) of raw-dtype stacks ``x`` in eval mode (the mode restored afterwards)."""
    was = backbone.training
    backbone.eval()
    dev = next(backbone.parameters()).device
    try:
        out = [backbone(to_unit_float(x[i : i + batch].to(dev))).float() for i in range(0, len(x), batch)]
    finally:
        backbone.train(was)
    return torch.cat(out)


def knn_score(embeddings: torch.Tensor, labels: torch.Tensor, k: int = 5) -> float:
    """Leave-one-out k-NN balanced accuracy of ``embeddings`` (N, D) with classes ``labels`` (N,): cosine
    similarity, the k nearest other samples vote (ties to the most similar class sum)."""
    z = F.normalize(embeddings.float(), dim=1)
    sim = z @ z.T
    sim.fill_diagonal_(-float("inf"))
    k = max(1, min(int(k), len(z) - 1))
    top, idx = sim.topk(k, dim=1)
    classes, y = torch.unique(labels.cpu(), return_inverse=True)
    y = y.to(z.device)
    votes = torch.zeros(len(z), len(classes), device=z.device, dtype=torch.float64)
    weights = 1.0 + 1e-6 * top.double()  # majority first, similarity breaks ties
    votes.scatter_add_(1, y[idx], weights)
    pred = votes.argmax(1)
    recalls = [float((pred[y == c] == c).double().mean()) for c in range(len(classes))]
    return float(np.mean(recalls))
