"""bioimage.io architecture entry point: rebuild a slicewise network from its ModelConfig.

This file is copied verbatim into every exported package (``slicewise_architecture.py``) and
named there as the ``pytorch_state_dict`` architecture, so bioimage.io tools rebuild the
network with ``SlicewiseNetwork(model_config=...)`` and then load the package's state dict. It
needs the ``slicewise`` package installed and never downloads: the encoder is built with
``weights="random"`` (the state dict brings the trained weights).

Input ``(B, k·colors, H, W)`` float in [0, 1] (the package's preprocessing scales uint8 by
1/255; mean/std normalization happens inside the network). Output ``(B, C, H, W)``
probabilities as ``slicewise predict`` writes them: softmax over the ``seg`` classes, sigmoid
for a ``boundary`` head, the raw value for a ``distance`` head.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from slicewise.models.build import build_model


class SlicewiseNetwork(nn.Module):
    """A slicewise ``SegmentationModel`` (attribute ``net``) followed by its output activations."""

    def __init__(self, model_config: dict[str, Any]) -> None:
        super().__init__()
        self.net = build_model({**dict(model_config), "weights": "random"})
        heads = []
        for name, sl in self.net.heads.items():
            start, stop, _ = sl.indices(int(self.net.out_channels))
            heads.append((str(name), int(start), int(stop)))
        self.head_ranges = sorted(heads, key=lambda h: h[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.net(x).float()
        parts = []
        for name, start, stop in self.head_ranges:
            part = logits[:, start:stop]
            if name == "seg":
                part = torch.softmax(part, dim=1)
            elif name == "boundary":
                part = torch.sigmoid(part)
            parts.append(part)
        return torch.cat(parts, dim=1)
