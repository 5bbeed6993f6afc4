"""``slicewise study init``: a study file for the user's own stack, loaded back and run with --smoke."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from slicewise.cli import main
from slicewise.errors import InputError
from slicewise.studies.grid import grid_cells
from slicewise.studies.init import init_study, parse_label_map
from slicewise.studies.schema import load_study


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    import tifffile

    from slicewise.data.synthetic import make_phantom

    d = tmp_path_factory.mktemp("own")
    ph = make_phantom(shape=(22, 96, 112), seed=3)
    tifffile.imwrite(d / "raw.tif", ph.raw)
    tifffile.imwrite(d / "isbi.tif", np.where(ph.semantic == 1, 0, 255).astype(np.uint8))  # ISBI: 0 membrane
    tifffile.imwrite(d / "classes.tif", ph.semantic.astype(np.uint8))
    return d


def test_init_writes_a_study_that_loads_and_keeps_test_slices_out_of_training(stack):
    text = init_study("bias", str(stack / "raw.tif"), str(stack / "isbi.tif"), "0:14", "16:20")
    raw = yaml.safe_load(text)
    assert raw["data"]["raw"] == str((stack / "raw.tif").resolve())
    assert raw["data"]["label_map"] == {0: 1, 255: 0}  # ISBI convention detected
    assert raw["data"]["train_z"] == [0, 14] and raw["data"]["test_z"] == [16, 20]
    v0, v1 = raw["base"]["data"]["val_range"]
    assert 0 < v0 < v1 <= 14  # validation inside the training slices (sub-stack coordinates)
    assert raw["base"]["data"]["patch_size"] <= 96 and raw["base"]["data"]["patch_size"] % 32 == 0
    path = stack / "my_bias.yaml"
    path.write_text(text)
    smoke = load_study(path, smoke=True)
    y0, y1, x0, x1 = smoke.data["crop"]
    assert 0 <= y0 < y1 <= 96 and 0 <= x0 < x1 <= 112
    assert smoke.data["test_z"][0] == 16 and smoke.data["test_z"][1] <= 20
    assert [c.params["channel_init"] for c in grid_cells(load_study(path))][:2] == ["rgb", "rgb"]


@pytest.mark.parametrize(
    "labels, label_map, expected_map, classes",
    [("classes.tif", None, None, 3), ("classes.tif", "0:0,1:1,2:0", {0: 0, 1: 1, 2: 0}, 2)],
)
def test_class_ids_and_explicit_label_maps(stack, labels, label_map, expected_map, classes):
    raw = yaml.safe_load(init_study("skips", str(stack / "raw.tif"), str(stack / labels), "0:14", "16:20", label_map))
    assert raw["data"]["label_map"] == expected_map and raw["base"]["model"]["classes"] == classes


@pytest.mark.parametrize(
    "train_z, test_z, label_map, template, match",
    [
        ("0:14", "14:18", None, "bias", "overlap --train-z"),  # test context slice 13 is a training slice
        ("6:20", "0:6", None, "bias", "overlap --train-z"),
        ("0:14", "16:40", None, "bias", "the stack has 22 slices"),
        ("0:14", "16:20", "0:1", "bias", r"label value\(s\) \[255\] are not in --label-map"),
        ("0:14", "16:20", "0:1,0:0", "bias", "mapped twice"),  # the one label-map parser: duplicate values refused
        ("0:14", "16:20", None, "unet", "templates for your own EM stack are bias, skips, emsam"),
    ],
)
def test_mistakes_are_refused_in_one_line(stack, train_z, test_z, label_map, template, match):
    with pytest.raises(InputError, match=match):
        init_study(template, str(stack / "raw.tif"), str(stack / "isbi.tif"), train_z, test_z, label_map)


def test_parse_label_map():
    assert parse_label_map("0:1, 255:0") == {0: 1, 255: 0} and parse_label_map(None) is None


def test_cli_init_then_smoke_run_of_one_cell(stack, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    main(
        [
            "study",
            "init",
            "bias",
            "--raw",
            str(stack / "raw.tif"),
            "--labels",
            str(stack / "isbi.tif"),
            "--train-z",
            "0:14",
            "--test-z",
            "16:20",
        ]
    )
    cap = capsys.readouterr()
    (tmp_path / "my_bias.yaml").write_text(cap.out)
    assert cap.out.startswith("# bias-raw") and cap.err == ""
    main(["study", "my_bias.yaml", "--smoke", "--cells", "0", "--no-report", "--out", "o", "--threads", "1"])
    cap = capsys.readouterr()
    assert "study bias-raw: 6 cells: 1 done, 0 failed, 5 pending" in cap.out
    assert "study bias-raw cell 1/1 (#0): channel_init=rgb seed=0" in cap.err
    result = yaml.safe_load((tmp_path / "o" / "cells" / "channel_init-rgb__seed-0" / "result.json").read_text())
    assert result  # the cell finished and recorded its metrics


def test_init_applies_the_checks_training_applies_to_raw_and_labels(stack, tmp_path, cli):
    """A raw stack holding NaN (or float labels with fractions) is refused by ``study init`` itself, as
    ``slicewise train`` would refuse it later, and no study file is printed."""
    import tifffile

    raw = tifffile.imread(stack / "raw.tif").astype(np.float32) / 255
    raw[17, 5, 5] = np.nan
    tifffile.imwrite(tmp_path / "nan.tif", raw)
    code, out, err = cli(
        [
            "study",
            "init",
            "bias",
            "--raw",
            tmp_path / "nan.tif",
            "--labels",
            stack / "isbi.tif",
            "--train-z",
            "0:14",
            "--test-z",
            "16:20",
        ]
    )
    assert code == 2 and out == "" and "NaN" in err and "z=17" in err and len(err.strip().splitlines()) == 1
    frac = tifffile.imread(stack / "classes.tif").astype(np.float32) + 0.5
    tifffile.imwrite(tmp_path / "frac.tif", frac)
    with pytest.raises(InputError, match="non-integer"):
        init_study("bias", str(stack / "raw.tif"), str(tmp_path / "frac.tif"), "0:14", "16:20")


@pytest.mark.parametrize(
    "template, says, not_says",
    [
        ("bias", ["first layer", "attribution target", "adapted Rand error"], ["shift"]),
        ("skips", ["skip connections", "under each synthetic shift"], ["attribution", "class-0 regions are the cells"]),
        ("emsam", ["SAM ViT", "boundary head", "mitochondria"], ["attribution"]),
    ],
)
def test_each_recipe_writes_its_own_header(stack, template, says, not_says):
    text = init_study(template, str(stack / "raw.tif"), str(stack / "classes.tif"), "0:14", "16:20")
    header = "".join(ln for ln in text.splitlines(keepends=True) if ln.startswith("#"))
    assert header.startswith(f"# {template}-raw") and all(w in header for w in says), header
    assert not any(w in header for w in not_says), header


def test_init_drops_encoders_whose_weights_cannot_be_obtained_offline(stack, monkeypatch, capsys):
    """ResNet ImageNet weights come from timm's hub: offline, `study init skips` drops those levels in one
    line (header and stderr) instead of leaving cells that fail after a minute of retries."""
    monkeypatch.setenv("SLICEWISE_OFFLINE", "1")
    monkeypatch.setattr("slicewise.studies.preflight._hub_cached", lambda encoder: False)
    text = init_study("skips", str(stack / "raw.tif"), str(stack / "isbi.tif"), "0:14", "16:20")
    raw = yaml.safe_load(text)
    assert raw["grid"]["encoder"] == ["lite0"]
    dropped = [ln for ln in text.splitlines() if ln.startswith("# Dropped:")]
    assert len(dropped) == 1 and "resnet18" in dropped[0] and "resnet34" in dropped[0]
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "resnet18, resnet34" in err


def test_run_refuses_unobtainable_weights_before_any_cell(stack, tmp_path, monkeypatch):
    """A grid with cells whose weights cannot be obtained is refused in one line before the first cell runs."""
    from slicewise.errors import ConfigError
    from slicewise.studies.execute import run_study

    monkeypatch.setenv("SLICEWISE_OFFLINE", "1")
    monkeypatch.setattr("slicewise.studies.preflight._hub_cached", lambda encoder: False)
    path = tmp_path / "s.yaml"
    path.write_text(init_study("skips", str(stack / "raw.tif"), str(stack / "isbi.tif"), "0:14", "16:20"))
    with pytest.raises(ConfigError, match=r"resnet18 weights=imagenet need timm's hub.*no cell was started"):
        run_study(path, tmp_path / "o", smoke=True, overrides=["grid.encoder=[resnet18,lite0]"], echo=lambda _: None)
    assert not (tmp_path / "o" / "cells").exists() or not any((tmp_path / "o" / "cells").iterdir())


def test_emsam_init_runs_a_smoke_cell_on_the_users_stack(stack, tmp_path):
    from slicewise.studies.execute import run_study

    path = tmp_path / "emsam.yaml"
    path.write_text(init_study("emsam", str(stack / "raw.tif"), str(stack / "classes.tif"), "0:14", "16:20"))
    study = load_study(path, smoke=True)
    assert "train_phantom" not in study.data and study.data["test_z"][0] == 16
    s = run_study(path, tmp_path / "o", smoke=True, cells="0", report=False, echo=lambda _: None)
    assert len(s.done) == 1, [(tmp_path / "o" / "cells" / c.id / "error.txt").read_text()[-400:] for c in s.failed]
    res = yaml.safe_load((tmp_path / "o" / "cells" / s.done[0].id / "result.json").read_text())
    assert {r["metric"] for r in res["metrics"]} >= {"are", "voi_split", "ap50"}  # neurons and class-2 mitochondria
