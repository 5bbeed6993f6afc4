"""Augmentation options: a pydantic model, typed into the configs, every problem one ConfigError line."""

from __future__ import annotations

import pytest

from slicewise.config import PretrainConfig, TrainConfig, validate
from slicewise.data.augment_config import AugmentConfig
from slicewise.errors import ConfigError


def test_configs_hold_an_augment_config_and_save_every_option() -> None:
    cfg = validate(TrainConfig, {"augment": {"flip": 0.2, "gamma_range": [0.9, 1.1]}})
    assert isinstance(cfg.augment, AugmentConfig) and cfg.augment.gamma_range == (0.9, 1.1)
    saved = cfg.model_dump(mode="json")["augment"]
    assert saved["flip"] == 0.2 and saved["gamma_range"] == [0.9, 1.1] and set(saved) == set(AugmentConfig.model_fields)
    assert validate(TrainConfig, {}).augment == AugmentConfig()
    assert isinstance(validate(PretrainConfig, {}).views.augment, AugmentConfig)
    assert AugmentConfig.from_dict(cfg.augment) is cfg.augment and AugmentConfig.from_dict(None) == AugmentConfig()


@pytest.mark.parametrize(
    "augment, expected",
    [
        ({"flipp": 0.5}, "config.yaml: unknown key 'augment.flipp' (did you mean 'flip'?)"),
        ({"flip": 1.5}, "config.yaml: bad value for 'augment.flip' (1.5): must be a probability in [0, 1]"),
        ({"gamma_range": [1.2, 0.8]}, "config.yaml: bad value for 'augment.gamma_range' ([1.2, 0.8]): must be (low"),
        ({"gamma_range": [0, 1]}, "config.yaml: bad value for 'augment.gamma_range' ([0, 1]): gamma exponents"),
        ({"blur_range": [-1, 1]}, "config.yaml: bad value for 'augment.blur_range' ([-1, 1]): contrast factors"),
    ],
)
def test_config_errors_name_the_augment_key(augment, expected) -> None:
    with pytest.raises(ConfigError) as err:
        validate(TrainConfig, {"augment": augment}, "config.yaml")
    assert str(err.value).startswith(expected), str(err.value)


def test_direct_use_is_one_line_too() -> None:
    for bad in ({"flipp": 0.5}, {"flip": 1.5}, {"noise_range": (0.1, 0.0)}):
        with pytest.raises(ConfigError, match="^augment: ") as err:
            AugmentConfig.from_dict(bad)
        assert "\n" not in str(err.value)
        with pytest.raises(ConfigError, match="^augment: "):
            AugmentConfig(**bad)
    off = AugmentConfig.off()
    assert off.flip == off.blur == 0.0 and off.blur_range == AugmentConfig().blur_range
