"""Configs that catch mistakes: warm-up longer than the run; ``train --steps``; worker and thread caps."""

from __future__ import annotations

import pytest
import yaml

from slicewise.config import TrainConfig, load_config
from slicewise.errors import ConfigError
from slicewise.train.run import steps_overrides


def test_warmup_longer_than_the_run_is_refused_naming_the_override(tmp_path):
    with pytest.raises(ConfigError, match=r"override 'trainer.max_steps=20'.*optim.warmup_steps=100 exceeds trainer.max_steps=20"):
        load_config(TrainConfig, None, ["trainer.max_steps=20"])
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"optim": {"warmup_steps": 50}, "trainer": {"max_steps": 10}}))
    with pytest.raises(ConfigError, match="c.yaml.*warmup_steps=50 exceeds"):
        load_config(TrainConfig, cfg)
    assert load_config(TrainConfig, None, ["trainer.max_steps=100"]).optim.warmup_steps == 100  # equal is fine


@pytest.mark.parametrize("steps, expected_warmup", [(20, 2), (5, 1), (100, None), (3000, None)])
def test_steps_sets_max_steps_and_shortens_only_the_default_warmup(tmp_path, steps, expected_warmup):
    items = steps_overrides(None, [], steps)
    cfg = load_config(TrainConfig, None, items)
    assert cfg.trainer.max_steps == steps
    assert cfg.optim.warmup_steps == (expected_warmup if expected_warmup is not None else 100)


def test_steps_keeps_an_explicit_warmup(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"optim": {"warmup_steps": 30}}))
    assert steps_overrides(cfg, [], 20) == ["trainer.max_steps=20"]  # the user's 30 > 20 is then refused, not hidden
    assert steps_overrides(None, ["optim.warmup_steps=0"], 20) == ["trainer.max_steps=20"]


def test_example_configs_need_no_more_workers_than_a_small_machine(monkeypatch):
    from pathlib import Path

    for path in sorted((Path(__file__).resolve().parents[2] / "examples").glob("train_*.yaml")):
        assert load_config(TrainConfig, path).data.num_workers <= 1, path.name
