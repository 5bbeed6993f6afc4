"""MODEL and config arguments: a missing file, a folder and an encoder name are told apart in one line
(model info, audit, predict, export, train), options that only build encoder specs are refused for a
saved model file, and ``export bioimageio`` refuses bad --test-size / --license values before any work."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

SMALL = dict(weights="random", decoder_channels=(16, 16, 8, 8, 8))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder holding best.pt (test_resnet) and an 8-bit volume next to it."""
    from slicewise.models import build_model, save_model

    d = tmp_path_factory.mktemp("run")
    save_model(build_model(encoder="test_resnet", **SMALL), d / "best.pt")
    tifffile.imwrite(d / "raw.tif", np.random.default_rng(0).integers(0, 256, (4, 64, 64), dtype=np.uint8))
    return d


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.mark.parametrize(
    "options, flags",
    [
        (["-k", "5"], "--in-slices/-k only build encoder specs"),
        (["--weights", "random", "--skips", "0111"], "--skips, --weights only build encoder specs"),
        (
            ["--classes", "4", "--colors", "3", "--channel-init", "rgb", "--img-size", "64"],
            "--colors, --channel-init, --classes, --img-size only build encoder specs",
        ),
    ],
)
def test_model_info_refuses_encoder_options_for_a_model_file(run_dir, cli, options, flags):
    code, out, err = cli(["model", "info", run_dir / "best.pt", *options])
    assert code == 2 and out == "" and flags in _one_line(err) and "saved model file" in err
    code, out, _ = cli(["model", "info", run_dir / "best.pt", "--size", "64"])  # --size applies to both kinds
    assert code == 0 and "test_resnet" in out


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["model", "info", "nope.pt"], "model file nope.pt does not exist: check the path"),
        (["model", "info", "runs/nope"], "model file runs/nope does not exist: check the path"),
        (["model", "info", "{run}"], "is a folder, not a file: give the model file inside it, e.g. {run}/best.pt"),
        (["model", "info", "resnet1"], "unknown encoder 'resnet1'"),
        (
            ["audit", "weights", "nope.pt", "--weights", "random"],
            "looks like a file path, but an encoder name is expected",
        ),
        (["model", "info", "test_resnet", "--weights", "{run}"], "checkpoint file {run} is a folder, not a file"),
        (["audit", "attribution", "nope.pt", "{run}/raw.tif"], "model file nope.pt does not exist"),
        (
            ["predict", "{run}", "{run}/raw.tif", "{run}/p.zarr"],
            "is a folder, not a file: give the model file inside it",
        ),
        (["export", "bioimageio", "{run}", "{run}/pkg.zip"], "is a folder, not a file: give the model file inside it"),
        (["train", "{run}"], "config file {run} is a folder, not a file: give the YAML file"),
    ],
)
def test_missing_files_folders_and_encoder_names_are_told_apart(run_dir, cli, argv, expected):
    code, _, err = cli([a.format(run=run_dir) for a in argv])
    assert code == 2 and expected.format(run=run_dir) in _one_line(err)
    assert not (run_dir / "p.zarr").exists() and not (run_dir / "pkg.zip").exists()


def test_an_encoder_name_that_is_also_a_folder_still_builds_the_encoder(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "test_resnet").mkdir()  # e.g. a run folder named after its encoder
    code, out, err = cli(["model", "info", "test_resnet", "--weights", "random", "--size", "64", "-k", "5"])
    assert code == 0, err
    assert "k=5" in out


@pytest.mark.parametrize("size", ["64x", "x64", "64,", "0", "-32x64"])
def test_model_info_size_uses_the_strict_size_parser(cli, size):
    code, _, err = cli(["model", "info", "test_resnet", "--weights", "random", f"--size={size}"])
    assert code == 2 and f"--size {size!r}" in _one_line(err)


@pytest.mark.parametrize(
    "options, expected",
    [
        (["--test-size", "0"], "--test-size 0: give the test tensor's side in pixels, a positive integer"),
        (["--test-size=-5"], "--test-size -5: give the test tensor's side in pixels"),
        (["--license", "NOT-A-LICENSE"], "--license 'NOT-A-LICENSE' is not an SPDX licence id"),
        (["--license", "GPL-2.0"], "did you mean GPL-2.0-only or GPL-2.0-or-later?"),
    ],
)
def test_export_refuses_bad_test_size_and_license_in_one_short_line(run_dir, tmp_path, cli, options, expected):
    pytest.importorskip("bioimageio.spec", reason="the bioimageio extra is not installed")
    code, _, err = cli(["export", "bioimageio", run_dir / "best.pt", tmp_path / "pkg.zip", *options])
    line = _one_line(err)
    assert code == 2 and expected in line and len(line) < 300 and not (tmp_path / "pkg.zip").exists()
    if "--license" in options:
        assert "https://spdx.org/licenses/" in line and "MIT" in line


def test_duplicate_keys_in_a_training_config_are_refused(tmp_path, cli):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("optim:\n  lr: 0.001\n  warmup_steps: 0\ntrainer:\n  max_steps: 2\noptim:\n  lr: 0.01\n")
    code, _, err = cli(["train", cfg, "--out", tmp_path / "run"])
    line = _one_line(err)
    assert code == 2 and "the key 'optim' appears twice (lines 1 and 6): keep one" in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "command",
    [
        ["audit", "attribution", "{run}/best.pt", "{run}/raw.tif"],
        ["audit", "shift", "{run}/best.pt", "{run}/raw.tif", "--shift", "contrast=0.5"],
    ],
)
def test_audit_refuses_encoder_options_for_a_model_file(run_dir, cli, command):
    argv = [a.replace("{run}", str(run_dir)) for a in command]
    code, out, err = cli([*argv, "-k", "5", "--tiles", "2", "--tile", "32"])
    assert code == 2 and out == "" and "--in-slices/-k only build encoder specs" in _one_line(err)
