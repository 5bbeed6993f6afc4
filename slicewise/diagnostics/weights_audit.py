"""First-layer weight audit: how much each input slice weighs before any data is seen.

For the encoder's adapted first layer W' (O × k·colors × h × w) the per-input-channel norms
are ``L1_c = Σ_{o,y,x} |W'[o, c, y, x]|`` and ``L2_c = sqrt(Σ W'[o, c, y, x]²)``; the slice
share is ``s_c = L1_c / Σ_c' L1_c'`` (colors of a slice summed first), and the indices are
those of :mod:`slicewise.diagnostics.asymmetry` (mirror asymmetry, centre share, pair
difference). ImageNet EfficientNet-Lite0 under ``rgb`` gives R 0.263, G 0.525, B 0.212,
MA 0.108: the pseudo-RGB stack weighs its slices unequally and asymmetrically.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from slicewise.config import FIRST_LAYER_STRATEGIES, ModelConfig, validate
from slicewise.diagnostics.asymmetry import centre_share, mirror_asymmetry, normalize_shares, pair_difference
from slicewise.models.build import build_adapted_encoder, colors_of
from slicewise.models.encoder_file import read_provenance
from slicewise.utils.table import num, text_table

RGB_NAMES = ("R", "G", "B")


def first_layer_norms(weight: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per-input-channel (L1, L2) norms of a (O, C, h, w) kernel, each shape (C,), float64."""
    w = weight.detach().double().transpose(0, 1).reshape(weight.shape[1], -1)
    return w.abs().sum(1).numpy(), w.pow(2).sum(1).sqrt().numpy()


def audit_weights(
    encoder: str = "tf_efficientnet_lite0",
    weights: str = "imagenet",
    in_slices: int = 3,
    channel_init: str = "rgb",
    img_size: int | None = None,
    colors: int = 1,
) -> dict[str, Any]:
    """Audit the adapted first layer of ``encoder`` (no data needed); JSON-ready dict.

    Keys: encoder, weights, in_slices, channel_init, first_layer (module path), kernel_shape,
    ``channels`` (per input channel: index, slice, offset, name, l1, l2, share_l1, share_l2),
    ``shares`` (per slice, L1-based), mirror_asymmetry, centre_share, pair_difference.
    Channel names are R/G/B for ``rgb`` with k = 3, else the z-offset (``z-1``, ``z+0``, ``z+1``),
    with ``/R``, ``/G``, ``/B`` appended for RGB slices (``colors=3``). An encoder file of ``slicewise
    pretrain`` as ``weights`` is audited with its own k, colors and strategy (the arguments give way).
    """
    pretrained = read_provenance(weights)  # an encoder file of `slicewise pretrain`: audited as it was trained
    if pretrained is not None:
        in_slices, channel_init, colors = pretrained["in_slices"], pretrained["channel_init"], pretrained["colors"]
    cfg = validate(
        ModelConfig,
        dict(
            encoder=encoder,
            weights=weights,
            in_slices=in_slices,
            channel_init=channel_init,
            img_size=img_size,
            colors=colors,
        ),
        "audit",
    )
    enc, _, _ = build_adapted_encoder(cfg)
    layer = enc.get_submodule(enc.first_conv)
    l1, l2 = first_layer_norms(layer.weight)
    k, colors = cfg.in_slices, colors_of(cfg)
    r = (k - 1) // 2
    slice_l1 = l1.reshape(k, colors).sum(1)
    shares = normalize_shares(slice_l1)
    share1, share2 = normalize_shares(l1), normalize_shares(l2)
    pseudo_rgb = FIRST_LAYER_STRATEGIES[channel_init].needs_three and k == 3 and colors == 1

    def name(c: int) -> str:
        z = c // colors
        if pseudo_rgb:
            return RGB_NAMES[c]
        return f"z{z - r:+d}" + (f"/{RGB_NAMES[c % colors]}" if colors == 3 else "")

    channels = [
        {
            "index": c,
            "slice": c // colors,
            "offset": c // colors - r,
            "name": name(c),
            "l1": float(l1[c]),
            "l2": float(l2[c]),
            "share_l1": float(share1[c]),
            "share_l2": float(share2[c]),
        }
        for c in range(len(l1))
    ]
    return {
        "encoder": cfg.encoder,
        "weights": cfg.weights,
        "in_slices": k,
        "channel_init": cfg.channel_init,
        "first_layer": enc.first_conv,
        "kernel_shape": list(layer.weight.shape),
        "channels": channels,
        "shares": [float(x) for x in shares],
        "mirror_asymmetry": float(mirror_asymmetry(shares)),
        "centre_share": float(centre_share(shares)),
        "pair_difference": float(pair_difference(shares)),
    }


def format_weights_audit(result: dict[str, Any]) -> str:
    """Plain-text table of an :func:`audit_weights` result (one row per input channel + indices)."""
    head = (
        f"first-layer audit: {result['encoder']} ({result['weights']}), k={result['in_slices']}, "
        f"{result['channel_init']}, layer {result['first_layer']} {tuple(result['kernel_shape'])}"
    )
    rows = text_table(
        [["channel", "name", "L1", "L2", "share L1", "share L2"]]
        + [
            [str(ch["index"]), str(ch["name"]), *(num(ch[c]) for c in ("l1", "l2", "share_l1", "share_l2"))]
            for ch in result["channels"]
        ],
        align="rrrrrr",
    )
    pd_ = result["pair_difference"]
    tail = (
        f"mirror asymmetry MA = {num(result['mirror_asymmetry'])}   centre share = {num(result['centre_share'])}   "
        f"pair difference s0 - s(k-1) = {'+' if pd_ >= 0 else ''}{num(pd_)}"
    )
    return "\n".join([head, *rows, tail])
