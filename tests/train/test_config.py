"""Training configs and labels: one-line errors naming the key and what is allowed (no training)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from slicewise.config import TrainConfig, validate
from slicewise.errors import ConfigError
from slicewise.training import resolve_config, train
from slicewise.training.datamodule import check_classes, map_labels, regions_as_instances


def _one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def test_unknown_key_names_it_and_the_allowed_keys():
    with pytest.raises(ConfigError) as err:
        resolve_config({"optim": {"learning_rate": 1e-3}})
    msg = _one_line(err)
    assert "optim.learning_rate" in msg and "allowed keys" in msg and "lr" in msg


def test_bad_value_names_the_key_and_the_allowed_values():
    with pytest.raises(ConfigError) as err:
        resolve_config(None, overrides=["loss.distance_loss=l1"])
    msg = _one_line(err)
    assert "loss.distance_loss" in msg and "mse" in msg and "smooth_l1" in msg
    with pytest.raises(ConfigError, match="data.val_fraction"):
        resolve_config({"data": {"val_fraction": 1.5}})
    with pytest.raises(ConfigError, match="flp"):
        resolve_config({"augment": {"flp": 0.5}})


def test_defaults_train_on_the_phantom_with_its_three_classes():
    cfg = resolve_config(None)
    assert cfg.data.raw is None and cfg.model.classes == 3
    assert resolve_config({"data": {"raw": "x.tif", "labels": "y.tif"}}).model.classes == 2
    assert validate(TrainConfig, {"trainer": {"precision": 32}}).trainer.precision == "32"
    assert validate(TrainConfig, {"data": {"patch_size": 128}}).data.patch_size == (128, 128)


def test_isbi_label_map_turns_membrane_into_class_1():
    raw = np.array([[0, 255], [255, 0]], np.uint8)
    np.testing.assert_array_equal(map_labels(raw, {0: 1, 255: 0}), [[1, 0], [0, 1]])
    with pytest.raises(ConfigError, match=r"\[128\].*data.label_map"):
        map_labels(np.array([0, 128, 255]), {0: 1, 255: 0})


def test_labels_with_more_classes_than_the_model_are_a_one_line_error():
    with pytest.raises(ConfigError) as err:
        check_classes(np.array([0, 1, 2, 3]), classes=2)
    assert "model.classes=2" in _one_line(err) and "model.classes=4" in str(err.value)
    check_classes(np.array([0, 1, 255]), classes=2, ignore_index=255)


def test_train_checks_labels_before_building_the_model(tmp_path):
    raw = np.random.default_rng(0).integers(0, 255, (6, 64, 64), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "raw.tif", raw)
    tifffile.imwrite(tmp_path / "lab.tif", (raw // 86).astype(np.uint8))  # classes 0, 1, 2
    cfg = {
        "data": {"raw": str(tmp_path / "raw.tif"), "labels": str(tmp_path / "lab.tif"), "patch_size": 64},
        "model": {"classes": 2, "weights": "random"},
    }
    with pytest.raises(ConfigError) as err:
        train(cfg, out=tmp_path / "run")
    assert "labels hold classes [0, 1, 2]" in _one_line(err)
    assert not (tmp_path / "run" / "config.yaml").exists()


def test_regions_become_instances_per_slice():
    lab = np.array([[[0, 0, 1, 0], [1, 1, 1, 0]]])
    inst = regions_as_instances(lab)
    assert len(np.unique(inst)) == 3 and inst[0, 0, 0] == inst[0, 0, 1] and inst[0, 0, 0] != inst[0, 0, 3]


def test_region_instances_are_unique_across_slices_and_classes():
    lab = np.array([[[0, 1], [0, 1]], [[0, 1], [0, 1]], [[1, 1], [1, 1]]])
    inst = regions_as_instances(lab)
    # each (slice, class) region is its own instance: slices 0 and 1 hold two regions each, slice 2 one
    assert len(np.unique(inst)) == 5 and inst.min() >= 1
    assert inst[0, 0, 0] != inst[1, 0, 0] and inst[0, 0, 1] != inst[1, 0, 1]
    for z in range(3):
        for c in np.unique(lab[z]):
            assert len(np.unique(inst[z][lab[z] == c])) == 1


def test_tensorboard_without_the_package_is_a_one_line_error(tmp_path, make_tiny_config):
    import importlib.util

    if any(importlib.util.find_spec(m) for m in ("tensorboard", "tensorboardX")):
        pytest.skip("tensorboard is installed here")
    cfg = make_tiny_config()
    cfg["trainer"]["tensorboard"] = True
    with pytest.raises(ConfigError, match="pip install tensorboard"):
        train(cfg, out=tmp_path / "run")


@pytest.mark.parametrize(
    "items,expected",
    [
        (["optim.lr=[1,"], "override 'optim.lr=[1,': the value is not valid YAML"),
        (["optim..lr=1"], "empty part"),
        (["optim=1", "optim.lr=2"], "cannot also hold keys"),
    ],
)
def test_malformed_overrides_are_one_line_errors_naming_the_override(items, expected):
    from slicewise.config import parse_overrides

    with pytest.raises(ConfigError) as err:
        parse_overrides(items)
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_a_typo_in_an_override_is_blamed_on_the_override_not_the_yaml(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("optim: {lr: 0.001}\n")
    with pytest.raises(ConfigError, match=r"override 'optim.lrr=1': unknown key 'optim.lrr' \(did you mean 'lr'\?\)"):
        resolve_config(str(cfg), ["optim.lrr=1"])
    cfg.write_text("optim: {lrr: 0.001}\n")
    with pytest.raises(ConfigError, match=r"^run.yaml: unknown key 'optim.lrr'"):  # a YAML typo stays the YAML's
        resolve_config(str(cfg), ["optim.lr=1"])


@pytest.mark.parametrize("labels", [[-44], [-1, 0, 1]])
def test_negative_labels_never_suggest_a_negative_class_count(labels):
    with pytest.raises(ConfigError) as err:
        check_classes(np.array(labels), classes=2)
    msg = str(err.value)
    assert "negative values" in msg and "classes=-" not in msg and "ignore_index" in msg
    if len(labels) == 1:
        check_classes(np.array(labels), classes=2, ignore_index=labels[0])  # ignored values are fine


@pytest.mark.parametrize(
    "override",
    [
        "seed=-1",
        "data.patch_size=0",
        "data.val_range=[4,4]",
        "optim.lr=.nan",
        "optim.betas=[0.9,1.5]",
        "loss.ce=-1",
        "data.train_fraction=0",
        "model.img_size=0",
        "data.synthetic.shape=[0,64,64]",
    ],
)
def test_nonsensical_numbers_are_refused(override):
    with pytest.raises(ConfigError, match="override"):
        resolve_config(None, [override])


def test_slicewise_train_is_the_function_even_after_the_package_is_imported():
    import types

    import slicewise
    import slicewise.training
    import slicewise.training.run

    assert slicewise.train is slicewise.training.train is slicewise.training.run.train
    assert not isinstance(slicewise.train, types.ModuleType)
