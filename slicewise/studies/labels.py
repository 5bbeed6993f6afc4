"""Human labels of metrics, grid axes and label columns, as the study report's figures and tables show them."""

from __future__ import annotations

from typing import Any

LABELS: dict[str, str] = {
    "dice": "Dice",
    "iou": "IoU",
    "mean_dice": "mean Dice",
    "mean_iou": "mean IoU",
    "foreground_dice": "foreground Dice",
    "are": "adapted Rand error (ARE)",
    "voi": "VOI (bits)",
    "voi_split": "VOI split (bits)",
    "voi_merge": "VOI merge (bits)",
    "ap": "AP",
    "ap50": "AP-50",
    "ap75": "AP-75",
    "seg_accuracy": "segmentation accuracy",
    "ma": "mirror asymmetry (MA)",
    "mirror_asymmetry": "mirror asymmetry (MA)",
    "share": "attribution share",
    "centre_share": "centre share",
    "pair_difference": "pair difference s0 − s(k−1)",
    "hellinger": "Hellinger distance (bias-corrected)",
    "channel_init": "first-layer strategy",
    "weights": "encoder weights",
    "encoder": "encoder",
    "skips": "skip connections",
    "fraction": "training fraction",
    "seed": "seed",
    "slice": "input slice",
    "stage": "stage",
    "values_per_channel": "values / channel",
    "hellinger_raw": "raw Hellinger distance",
    "hellinger_null": "null baseline (Hellinger)",
    "layer": "layer",
    "shift": "shift",
    "test": "test set",
    "image": "image",
}
"""Human labels of metrics, grid axes and label columns (figures and tables); others: underscores → spaces."""


def label(name: Any) -> str:
    """Human label of a metric / axis / column name (:data:`LABELS`), else the name with spaces."""
    return LABELS.get(str(name), str(name).replace("_", " "))
