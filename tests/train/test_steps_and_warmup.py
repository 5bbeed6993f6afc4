"""Configs that catch mistakes: warm-up longer than the run; ``train --steps``; worker and thread caps."""

from __future__ import annotations

import pytest
import yaml

from slicewise.config import TrainConfig, load_config
from slicewise.errors import ConfigError


def test_an_explicit_warmup_longer_than_the_run_is_refused_naming_its_source(tmp_path):
    with pytest.raises(
        ConfigError,
        match=r"override '(optim.warmup_steps=30|trainer.max_steps=20)'.*warmup_steps=30 exceeds trainer.max_steps=20",
    ):
        load_config(TrainConfig, None, ["trainer.max_steps=20", "optim.warmup_steps=30"])
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"optim": {"warmup_steps": 50}, "trainer": {"max_steps": 10}}))
    with pytest.raises(ConfigError, match="c.yaml.*warmup_steps=50 exceeds"):
        load_config(TrainConfig, cfg)
    assert load_config(TrainConfig, None, ["trainer.max_steps=100", "optim.warmup_steps=100"]).optim.warmup_steps == 100


@pytest.mark.parametrize("steps, expected_warmup", [(20, 2), (5, 0), (100, 100), (3000, 100)])
def test_a_default_warmup_shrinks_to_a_tenth_of_a_short_run(steps, expected_warmup, caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="slicewise.config"):
        cfg = load_config(TrainConfig, None, [f"trainer.max_steps={steps}"])
    assert cfg.trainer.max_steps == steps and cfg.optim.warmup_steps == expected_warmup
    assert ("exceeds trainer.max_steps" in caplog.text) == (expected_warmup != 100)
    again = TrainConfig.model_validate(cfg.model_dump(mode="json"))  # the saved config.yaml reloads unchanged
    assert again == cfg


def test_train_steps_option(tmp_path, capsys):
    from slicewise.cli import main

    main(
        [
            "train",
            "data.synthetic.shape=[8,64,64]",
            "data.patch_size=64",
            "data.batch_size=2",
            "data.num_workers=0",
            "data.val_patches=1",
            "model.weights=random",
            "model.decoder_channels=[16,16,8,8,8]",
            "trainer.val_every=2",
            "trainer.max_steps=50",
            "--steps",
            "2",
            "--out",
            str(tmp_path / "run"),
        ]
    )
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["trainer"]["max_steps"] == 2 and saved["optim"]["warmup_steps"] == 0


def test_example_configs_need_no_more_workers_than_a_small_machine(monkeypatch):
    from pathlib import Path

    for path in sorted((Path(__file__).resolve().parents[2] / "examples").glob("train_*.yaml")):
        assert load_config(TrainConfig, path).data.num_workers <= 1, path.name
