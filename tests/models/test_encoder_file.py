"""Encoder weights files of ``slicewise pretrain``: timm keys + provenance, read by every consumer."""

from __future__ import annotations

import pytest
import torch

import slicewise
from slicewise.config import ModelConfig
from slicewise.errors import WeightsError
from slicewise.models.build import build_adapted_encoder
from slicewise.models.encoder_file import (
    effective_state_dict,
    encoder_file_info,
    pretrain_citation,
    read_provenance,
    save_encoder,
)

PROV = {
    "encoder": "test_efficientnet",
    "in_slices": 3,
    "colors": 1,
    "channel_init": "mirror",
    "dz": 2,
    "border": "reflect",
    "start_weights": "random",
    "method": "mocov2",
    "steps": 7,
    "seed": 0,
    "data": {"raw": [{"path": "/x.tif"}]},
}


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    """A 'pretrained' mirror encoder: random weights moved away from their start, saved with provenance."""
    torch.manual_seed(3)
    enc, _, _ = build_adapted_encoder(ModelConfig(encoder="test_efficientnet", weights="random", channel_init="mirror"))
    with torch.no_grad():
        for p in enc.parameters():
            p.add_(0.01 * torch.randn_like(p))
        for m in enc.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.add_(0.1)
    path = tmp_path_factory.mktemp("w") / "encoder.safetensors"
    save_encoder(enc, path, PROV)
    return path, effective_state_dict(enc), enc  # mirror: its effective (symmetric) kernel, what the network uses


def test_file_holds_timm_keys_and_the_provenance(weights_file):
    from safetensors.torch import load_file

    path, _, enc = weights_file
    sd = load_file(str(path))
    prov = read_provenance(path)
    assert prov["method"] == "mocov2" and prov["steps"] == 7 and prov["data"] == PROV["data"] and prov["dz"] == 2
    first = sd[prov["first_layer_key"]]
    assert prov["first_layer_key"] == "conv_stem.weight" and first.shape[1] == 3 and torch.equal(first, first.flip(1))
    assert torch.equal(first, enc.get_submodule(enc.first_conv).weight)  # the effective (symmetric) kernel
    info = encoder_file_info(path)
    assert info["tensors"] == len(sd) and info["params"] == sum(v.numel() for v in sd.values())
    text, doi = pretrain_citation(path)
    assert "mocov2" in text and "7 steps" in text and doi.startswith("10.")


def test_build_model_starts_exactly_from_the_file(weights_file):
    path, ref, _ = weights_file
    model = slicewise.build_model(encoder="test_efficientnet", weights=str(path), in_slices=3, channel_init="mirror")
    got = effective_state_dict(model.encoder)
    assert got.keys() == ref.keys() and all(torch.equal(got[k], ref[k]) for k in ref)
    fresh = slicewise.build_model(encoder="test_efficientnet", weights="random", in_slices=3, channel_init="mirror")
    assert not torch.equal(fresh.first_layer.weight, model.first_layer.weight)


@pytest.mark.parametrize(
    "field, value, name",
    [
        ("in_slices", 5, "in_slices=3"),
        ("channel_init", "uniform", "channel_init=mirror"),
        ("encoder", "resnet10t", "encoder=test_efficientnet"),
    ],
)
def test_an_incompatible_model_is_refused_in_one_line(weights_file, field, value, name):
    path, _, _ = weights_file
    kwargs = {"encoder": "test_efficientnet", "in_slices": 3, "channel_init": "mirror", field: value}
    with pytest.raises(WeightsError, match=name) as err:
        slicewise.build_model(weights=str(path), **kwargs)
    assert "\n" not in str(err.value)


def test_train_starts_from_the_file(weights_file, tmp_path):
    path, ref, _ = weights_file
    cfg = {
        "data": {
            "synthetic": {"shape": [6, 64, 64]},
            "patch_size": 64,
            "batch_size": 2,
            "num_workers": 0,
            "val_patches": 1,
        },
        "model": {
            "encoder": "test_efficientnet",
            "weights": str(path),
            "in_slices": 3,
            "channel_init": "mirror",
            "decoder_channels": [8, 8, 8, 8, 8],
        },
        "optim": {"warmup_steps": 0, "freeze_encoder_steps": 1},  # the encoder is not updated in this one step
        "trainer": {"max_steps": 1, "val_every": 1, "accelerator": "cpu"},
    }
    res = slicewise.train(cfg, out=tmp_path / "run")
    got = effective_state_dict(slicewise.load_model(res.last_model).encoder)
    assert all(torch.equal(got[k], ref[k]) for k in ref)


def test_audit_weights_reads_the_file_with_its_own_settings(weights_file):
    from slicewise.diagnostics.weights_audit import audit_weights

    path, _, _ = weights_file
    res = audit_weights("test_efficientnet", str(path), in_slices=5, channel_init="rgb")
    assert (
        res["in_slices"] == 3
        and res["channel_init"] == "mirror"
        and res["mirror_asymmetry"] == pytest.approx(0.0, abs=1e-12)
    )


def test_other_files_are_not_taken_for_encoder_files(tmp_path):
    from safetensors.torch import save_file

    plain = tmp_path / "plain.safetensors"
    save_file({"x": torch.zeros(1)}, str(plain))
    assert read_provenance(plain) is None and pretrain_citation(plain) is None
    with pytest.raises(WeightsError, match="not an encoder weights file"):
        encoder_file_info(plain)


def test_bioimageio_export_cites_the_pretraining(weights_file):
    from slicewise.export.bmz import seed_citations
    from slicewise.models.encoder_file import CEM500K_DOI

    path, _, _ = weights_file
    cites = seed_citations(ModelConfig(encoder="test_efficientnet", weights=str(path), channel_init="mirror"))
    assert any(doi == CEM500K_DOI and "slicewise pretrain (mocov2, 7 steps" in text for text, doi in cites)
    plain = seed_citations(ModelConfig(encoder="test_efficientnet", weights="random", channel_init="mirror"))
    assert not any(doi == CEM500K_DOI for _, doi in plain)


def test_a_vit_encoder_round_trips_through_the_file(tmp_path):
    torch.manual_seed(0)
    cfg = ModelConfig(encoder="slicewise_samvit_tiny_patch16", weights="random", channel_init="mirror", in_slices=5)
    enc, _, _ = build_adapted_encoder(cfg)
    with torch.no_grad():
        for p in enc.vit.parameters():
            p.add_(0.01 * torch.randn_like(p))
    path = save_encoder(enc, tmp_path / "vit.safetensors", {**PROV, "encoder": cfg.encoder, "in_slices": 5})
    assert read_provenance(path)["first_layer_key"] == "patch_embed.proj.weight"
    model = slicewise.build_model(encoder=cfg.encoder, weights=str(path), in_slices=5, channel_init="mirror")
    ref, got = effective_state_dict(enc), effective_state_dict(model.encoder)
    vit = [k for k in ref if k.startswith("vit.")]
    assert vit and all(torch.equal(got[k], ref[k]) for k in vit)  # the ladders are not pretrained: not in the file
