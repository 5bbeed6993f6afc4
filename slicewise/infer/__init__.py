"""Inference: tiling, block-wise prediction (in memory or into a store), storage and instance segmentation."""

from slicewise.infer.instances import SegmentOptions, segment, segment_to
from slicewise.infer.predict import PredictSettings, predict, predict_to
from slicewise.infer.store import read_prediction
from slicewise.infer.tiling import gaussian_weight, iter_tiles, tile_starts

__all__ = [
    "PredictSettings",
    "SegmentOptions",
    "gaussian_weight",
    "iter_tiles",
    "predict",
    "predict_to",
    "read_prediction",
    "segment",
    "segment_to",
    "tile_starts",
]
