"""Quality signals: k-NN probe score, probe patches, embedding spread; pretraining beats random initialization."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from slicewise.errors import InputError
from slicewise.selfsup.probe import ProbeSet, embedding_std, knn_score


def test_knn_score_is_one_for_separated_classes_and_chance_for_noise():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(3).repeat_interleave(20)
    centres = torch.eye(3, 8) * 10
    separated = centres[y] + 0.1 * torch.randn((60, 8), generator=g)
    assert knn_score(separated, y) == 1.0
    noise = torch.randn((600, 8), generator=g)
    assert abs(knn_score(noise, torch.arange(3).repeat(200)) - 1 / 3) < 0.08


def test_embedding_std_is_zero_for_one_point_and_about_one_over_sqrt_dim_when_spread():
    assert embedding_std(torch.ones(16, 32)) == 0.0
    spread = embedding_std(torch.randn(4096, 32, generator=torch.Generator().manual_seed(0)))
    assert spread == pytest.approx(1 / np.sqrt(32), rel=0.05)


def test_probe_patches_are_centered_on_pixels_of_their_class(phantom):
    probe = ProbeSet(phantom.raw, phantom.semantic, [3, 8], k=3, dz=1, border="reflect", size=32, per_class=10, seed=0)
    assert probe.classes == [0, 1, 2] and len(probe) == 30 and probe.x.shape == (30, 3, 32, 32)
    assert probe.x.dtype == torch.uint8 and torch.equal(torch.bincount(probe.y), torch.tensor([10, 10, 10]))
    mapped = ProbeSet(phantom.raw, phantom.semantic, None, 3, 1, "reflect", 32, 10, seed=0, label_map={0: 0, 2: 1})
    assert mapped.classes == [0, 1]  # membrane pixels (1) are outside the map: left out


def test_probe_input_errors_are_one_line(phantom):
    with pytest.raises(InputError, match="probe_z"):
        ProbeSet(phantom.raw, phantom.semantic, [99], 3, 1, "reflect", 32, 4)
    with pytest.raises(InputError, match="at least 2 classes"):
        ProbeSet(phantom.raw, np.zeros_like(phantom.semantic), None, 3, 1, "reflect", 32, 4)
    with pytest.raises(InputError, match="shape"):
        ProbeSet(phantom.raw, phantom.semantic[:, :50], None, 3, 1, "reflect", 32, 4)


def test_pretraining_beats_random_initialization_on_the_phantom_probe(tmp_path):
    """VICReg with z-context positives, 120 steps on a 8×128×128 phantom: the k-NN probe on the phantom's classes
    (cytoplasm, membrane, mitochondrion; 64 patches each; chance 1/3) rises well above the random start's score,
    and the weights file reproduces the final score."""
    import csv

    import slicewise
    from slicewise.config import PretrainModelConfig
    from slicewise.data import make_phantom
    from slicewise.selfsup.methods import Backbone
    from slicewise.selfsup.probe import embed

    overrides = [
        "model.encoder=test_efficientnet",
        "model.weights=random",
        "method.name=vicreg",
        "data.patch_size=32",
        "data.batch_size=32",
        "data.synthetic.shape=[8,128,128]",
        "data.probe_patches=64",
        "views.region_scale=1.0",
        "views.crop_scale=[1,1]",
        "views.z_context=1",
        "trainer.max_steps=120",
        "trainer.val_every=60",
        "trainer.accelerator=cpu",
        "optim.lr=3e-3",
        "seed=0",
    ]
    res = slicewise.pretrain(out=tmp_path / "run", overrides=overrides)
    knn = {int(r["step"]): float(r["val/knn"]) for r in csv.DictReader(res.metrics_csv.open()) if r.get("val/knn")}
    start, end = knn[0], knn[max(knn)]
    assert 0.5 < start < 0.7  # random features already separate the classes somewhat
    assert end > start + 0.1, knn
    ph = make_phantom(shape=(8, 128, 128), seed=0)
    probe = ProbeSet(ph.raw, ph.semantic, None, 3, 1, "reflect", 32, 64, seed=0)
    model = slicewise.build_model(
        encoder="test_efficientnet", weights=str(res.weights), in_slices=3, channel_init="uniform"
    )
    assert PretrainModelConfig().channel_init == "uniform"
    assert knn_score(embed(Backbone(model.encoder, model.mean, model.std), probe.x), probe.y) == pytest.approx(
        end, abs=1e-6
    )
