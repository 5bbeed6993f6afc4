"""Inference: block-wise prediction (in memory or into a store) and its settings."""

from slicewise.data.io.predictions import read_prediction
from slicewise.infer.predict import predict, predict_to
from slicewise.infer.settings import PredictSettings

__all__ = [
    "PredictSettings",
    "predict",
    "predict_to",
    "read_prediction",
]
