"""build_model / save_model / load_model / model_info and the `slicewise model info` command."""

from __future__ import annotations

import json

import pytest
import torch

from slicewise.config import ModelConfig
from slicewise.errors import ConfigError, InputError
from slicewise.models import build_model, load_model, model_info, save_model

SMALL = dict(decoder_channels=(32, 16, 16, 8, 8))


def test_build_from_config_or_keywords_agree():
    cfg = ModelConfig(
        encoder="tf_efficientnet_lite0", weights="imagenet", in_slices=5, channel_init="mirror", skips="0111", **SMALL
    )
    a = build_model(config=cfg)
    b = build_model(
        encoder="tf_efficientnet_lite0", weights="imagenet", in_slices=5, channel_init="mirror", skips="0111", **SMALL
    )
    assert a.config == b.config == cfg
    assert (a.in_slices, a.in_channels, a.out_channels, a.size_divisor) == (5, 5, 2, 32)
    torch.testing.assert_close(a.first_layer.weight, b.first_layer.weight)
    assert build_model(cfg, classes=3).out_channels == 3  # keyword overrides a config


def test_bad_config_values_are_one_line_errors():
    for bad in (dict(in_slices=4), dict(skips="01a1"), dict(unknown=1), dict(encoder="resnet_18")):
        with pytest.raises(ConfigError) as err:
            build_model(weights="random", **bad)
        assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "arch",
    [
        dict(
            encoder="tf_efficientnet_lite0",
            weights="imagenet",
            channel_init="mirror",
            in_slices=5,
            extra_heads=("boundary", "distance"),
        ),
        dict(encoder="slicewise_samvit_tiny_patch16", weights="random", channel_init="random", img_size=64),
    ],
    ids=["lite0-mirror", "samvit-random"],
)
def test_save_load_round_trip(tmp_path, arch):
    model = build_model(**arch, **SMALL)
    model.train()
    model(torch.rand(2, model.in_channels, 64, 64)).mean().backward()  # moves BN running stats
    path = save_model(model, tmp_path / "model.pt")
    loaded = load_model(path)
    assert loaded.config == model.config and loaded.heads == model.heads
    model.eval(), loaded.eval()
    x = torch.rand(1, model.in_channels, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert not list(tmp_path.glob(".*tmp*"))  # atomic write left no temporary file


def test_load_bad_files_one_line(tmp_path):
    cases = {tmp_path / "missing.pt": "does not exist"}
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00garbage")
    cases[junk] = "not a readable slicewise model"
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    cases[foreign] = "not a slicewise model file"
    broken = tmp_path / "broken.pt"
    model = build_model(encoder="tf_efficientnet_lite0", weights="random", **SMALL)
    save_model(model, broken)
    payload = torch.load(broken, weights_only=True)
    payload["state_dict"].pop("decoder.head.weight")
    torch.save(payload, broken)
    cases[broken] = "corrupt"
    for path, expected in cases.items():
        with pytest.raises(InputError) as err:
            load_model(path)
        assert expected in str(err.value) and "\n" not in str(err.value)


def test_a_folder_given_as_model_file_says_so(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(InputError, match=r"model file .*run is a folder, not a file: give a model file \(a \.pt"):
        load_model(run)
    save_model(build_model(encoder="tf_efficientnet_lite0", weights="random", **SMALL), run / "best.pt")
    with pytest.raises(
        InputError, match=r"is a folder, not a file: give the model file inside it, e\.g\. .*run/best\.pt$"
    ):
        load_model(run)


def test_input_checks():
    model = build_model(encoder="tf_efficientnet_lite0", weights="random", in_slices=3, **SMALL)
    with pytest.raises(InputError, match=r"multiples of 32 \(e.g. 128x64\)"):
        model.check_input_size(100, 64)
    with pytest.raises(InputError, match=r"expects \(B, 3, H, W\)"):
        model(torch.rand(1, 5, 64, 64))
    vit = build_model(encoder="slicewise_samvit_tiny_patch16", weights="random", img_size=64, **SMALL)
    assert vit.size_divisor == 16
    vit.check_input_size(48, 80)  # any multiple of the patch size works for SAM's ViT
    with pytest.raises(InputError, match="multiples of 16"):
        vit.check_input_size(40, 64)


def test_model_info_counts_parameters_and_flops():
    model = build_model(encoder="tf_efficientnet_lite0", weights="random", **SMALL)
    a, b = model_info(model, (64, 64)), model_info(model, (128, 128))
    assert a["params"] == sum(p.numel() for p in model.parameters())
    assert a["encoder_params"] + a["decoder_params"] == a["params"]
    assert b["gflops"] == pytest.approx(4 * a["gflops"], rel=1e-3)  # convolutions scale with pixels
    assert model.training  # mode restored


def test_resnet34_unet_flops_match_smp_anchor():
    """docs/design-notes.md anchor: smp Unet-ResNet34 at 512², k=3 costs 62.5 GFLOP per image."""
    model = build_model(encoder="resnet34", weights="random", channel_init="rgb")
    assert model_info(model, (512, 512))["gflops"] == pytest.approx(62.5, rel=0.01)


def test_cli_model_info(tmp_path, capsys):
    from slicewise.cli import main

    with pytest.raises(SystemExit) as ex:
        main(["model", "info", "tf_efficientnet_lite0", "--size", "100"])
    assert ex.value.code == 2 and "multiples of 32" in capsys.readouterr().err
    main(["model", "info", "tf_efficientnet_lite0", "--size", "64", "--skips", "0111", "-k", "5", "--json"])
    info = json.loads(capsys.readouterr().out)
    assert info["in_slices"] == 5 and info["live_skip_strides"] == [4, 8, 16]
    path = save_model(build_model(encoder="resnet18", weights="random", **SMALL), tmp_path / "m.pt")
    main(["model", "info", str(path), "--size", "64"])
    out = capsys.readouterr().out
    assert "resnet18" in out and "GFLOP" in out


def test_sam_vit_b_encoder_flops_match_anchor():
    """docs/design-notes.md anchor: timm SAM ViT-B image encoder at 1024² costs 972 GFLOP per image."""
    import copy

    from torch.utils.flop_counter import FlopCounterMode

    model = build_model(encoder="samvit_base_patch16", weights="random", channel_init="rgb")
    info = model_info(model, (1024, 1024))
    assert info["encoder_params"] > 85e6
    vit = copy.deepcopy(model.encoder.vit).to("meta")
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        vit.forward_features(torch.zeros(1, 3, 1024, 1024, device="meta"))
    assert counter.get_total_flops() / 1e9 == pytest.approx(972, rel=0.01)
    assert info["gflops"] > 972  # plus the ladder and the decoder
