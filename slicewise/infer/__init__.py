"""Inference: tiling, whole-volume prediction (in memory, chunked, dask) and instance segmentation."""

from slicewise.infer.instances import segment
from slicewise.infer.predict import predict, predict_dask, predict_slices
from slicewise.infer.tiling import gaussian_weight, iter_tiles, tile_starts

__all__ = ["gaussian_weight", "iter_tiles", "predict", "predict_dask", "predict_slices", "segment", "tile_starts"]
