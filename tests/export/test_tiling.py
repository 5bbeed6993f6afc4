"""bioimage.io consumers tile the exported package as slicewise does (``slicewise/export/bmz.py``: the declared
halo and valid input sizes): bioimageio.core's own tiled prediction of a slice larger than a tile agrees with
``slicewise.predict`` near the consumer's tile edges and far from them.

Network: EfficientNet-Lite0 with its ImageNet encoder (shipped, no network) and a random decoder whose head is
scaled ×20 — a deep encoder whose output depends on context far from a pixel, as a trained EM model's does;
the tiny test_resnet of ``conftest.tiny_model`` is too shallow to show seams at all.

Measured (2 CPU threads, 320×288 phantom slice, slicewise tile 256 / overlap 0.25, bioimageio.core blocks of
256 = 192 kept + 2 × 32 halo), over pixels at least the halo inside the image: within 16 px of a block edge
mean |Δp| 0.0007, max 0.08, class disagreement 0.1 % (without a halo: 0.0094, 0.34, 1.5 %); farther than
32 px from block edges mean 0.0042, max 0.32, 0.7 % — that residual is slicewise's own tile blending (its
tiled result differs from a one-tile prediction of the whole slice by up to 0.32 too). Within the halo of the
image border the consumer pads (symmetric, bioimage.io's default) and slicewise does not: mean 0.036, 7 %
disagreement there (without the halo 0.003 and 0.7 %: the price of seamless tiles, paid in a 32 px frame).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip(
    "bioimageio.core", reason="the bioimageio extra is not installed: pip install 'slicewise[bioimageio]'"
)


@pytest.fixture(scope="module")
def lite0_package(tmp_path_factory: pytest.TempPathFactory):
    from slicewise.export import bioimageio
    from slicewise.models import build_model, save_model

    torch.manual_seed(0)
    model = build_model(
        encoder="tf_efficientnet_lite0",
        weights="imagenet",
        decoder_channels=(32, 16, 16, 8, 8),
        channel_init="uniform",
        classes=2,
        class_names=["cytoplasm", "membrane"],
    ).eval()
    with torch.no_grad():
        model.decoder.head.weight.mul_(20.0)
    root = tmp_path_factory.mktemp("bmz-tiling")
    pkg = bioimageio(
        save_model(model, root / "best.pt"), root / "lite0.zip", authors=["Ada Lovelace"], torchscript=False
    )
    return model, pkg


def _distance_to_edges(n: int, inner: int) -> np.ndarray:
    """Distance (px) of each index of an axis of ``n`` pixels to the nearest boundary between kept block regions."""
    edges = np.arange(inner, n, inner, dtype=np.float64) - 0.5
    idx = np.arange(n, dtype=np.float64)
    return np.abs(idx[:, None] - edges[None, :]).min(1) if len(edges) else np.full(n, np.inf)


def test_bioimageio_core_tiled_prediction_agrees_with_slicewise(lite0_package) -> None:
    from bioimageio.core import load_description
    from bioimageio.core import predict as bmz_predict
    from bioimageio.core.digest_spec import create_sample_for_model

    from slicewise.data.stacking import stack_slices
    from slicewise.data.synthetic import make_phantom
    from slicewise.export.bmz import HALO
    from slicewise.infer.predict import predict

    model, pkg = lite0_package
    descr = load_description(str(pkg))
    out_axes = {str(a.id): a for a in descr.outputs[0].axes}
    h = out_axes["y"].halo
    assert h == out_axes["x"].halo == HALO == 32
    size = descr.inputs[0].axes[2].size
    block = size.min + 5 * size.step  # blocksize_parameter 5 → 256, slicewise's default tile; 192 kept per block
    assert (size.min, size.step, block) == (96, 32, 256)

    vol = make_phantom(shape=(3, 320, 288), seed=5).raw
    assert vol.shape[1] > block and vol.shape[2] > block  # larger than one tile: the consumer must tile
    ref = predict(model, vol, roi="1:2", tile=256, overlap=0.25, dz=1, device="cpu", progress=False)[:, 0]
    sample = create_sample_for_model(descr, inputs={"raw": stack_slices(vol, 1, 3, 1, "reflect")[None]})
    got = bmz_predict(model=descr, inputs=sample, blocksize_parameter=5).members["probabilities"].data.to_numpy()[0]
    assert got.shape == ref.shape == (2, 320, 288)

    diff = np.abs(got - ref).max(0)
    disagree = got.argmax(0) != ref.argmax(0)
    H, W = ref.shape[1:]
    yy, xx = np.mgrid[:H, :W]
    inside = np.minimum.reduce([yy, xx, H - 1 - yy, W - 1 - xx]) >= h  # the image border is padded by the consumer only
    edge = np.minimum(_distance_to_edges(H, block - 2 * h)[:, None], _distance_to_edges(W, block - 2 * h)[None, :])
    near, far = inside & (edge < 16), inside & (edge > 32)
    assert near.sum() > 5000 and far.sum() > 5000
    # near the consumer's tile edges: no seam (without the halo: mean 0.0094, max 0.34, 1.5 % of pixels flipped)
    assert diff[near].mean() < 0.003 and diff[near].max() < 0.2 and disagree[near].mean() < 0.005
    # far from them: within slicewise's own tiling residual
    whole = predict(model, vol, roi="1:2", tile=(H, W), overlap=0.0, dz=1, device="cpu", progress=False)[:, 0]
    own = np.abs(whole - ref).max(0)
    assert diff[far].mean() < 0.01 and disagree[far].mean() < 0.02
    assert diff[far].max() <= own[inside].max() + 0.05
