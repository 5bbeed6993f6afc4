"""Integration: the real SegmentationModel (EfficientNet-Lite0, random weights, tiny decoder) end to end."""

import numpy as np
import pytest

from slicewise.data.io.predictions import read_prediction
from slicewise.infer.predict import predict, predict_to

KW = dict(tile=64, overlap=0.25, batch_size=4, progress=False, device="cpu")


@pytest.fixture(scope="module")
def model():
    from slicewise.models import build_model

    return build_model(
        encoder="tf_efficientnet_lite0",
        weights="random",
        in_slices=3,
        decoder_channels=(16, 8, 8, 8, 8),
        extra_heads=("boundary",),
    ).eval()


@pytest.fixture(scope="module")
def volume():
    return np.random.default_rng(3).integers(0, 256, (5, 70, 90), dtype=np.uint8)


@pytest.fixture(scope="module")
def reference(model, volume):
    return predict(model, volume, **KW)


def test_real_model_probabilities_are_valid(model, reference, volume):
    assert reference.shape == (3, *volume.shape) and reference.dtype == np.float32
    np.testing.assert_allclose(reference[:2].sum(0), 1.0, atol=1e-5)
    assert reference[2].min() >= 0 and reference[2].max() <= 1
    assert reference.std(axis=(2, 3)).min() > 0  # position-dependent output, so blending is exercised


def test_real_model_blockwise_stores_equal_in_memory(model, volume, reference, tmp_path):
    for name, block in [("o.zarr", (2, 40, 50)), ("o.h5", (5, 70, 90)), ("o.tif", (3, 33, 64))]:
        kind = "probabilities" if name.endswith(".tif") else "both"
        out = predict_to(model, volume, tmp_path / name, output_kind=kind, block=block, **KW)
        with read_prediction(out) as pred:
            np.testing.assert_allclose(pred.probabilities[...], reference, rtol=0, atol=1e-5)
            assert pred.channels == ["class0", "class1", "boundary"]
            if kind == "both":
                np.testing.assert_array_equal(np.asarray(pred.labels[...]), np.argmax(reference[:2], 0))
