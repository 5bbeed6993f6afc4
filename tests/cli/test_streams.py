"""Results on stdout, status lines and progress on stderr: the streams of train / predict / evaluate,
and help texts that say what the commands read."""

from __future__ import annotations

import re

import numpy as np
import pytest

STATUS = re.compile(r"^\[\d\d:\d\d:\d\d\] ")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from slicewise.data.io import write_volume
    from slicewise.models import build_model, save_model

    d = tmp_path_factory.mktemp("streams")
    save_model(
        build_model(encoder="tf_efficientnet_lite0", weights="random", in_slices=3, decoder_channels=(16, 8, 8, 8, 8)),
        d / "m.pt",
    )
    write_volume(d / "raw.tif", np.random.default_rng(0).integers(0, 256, (4, 64, 64), dtype=np.uint8))
    lab = np.zeros((4, 64, 64), np.uint8)
    lab[:, 8:40, 8:40] = 1
    write_volume(d / "gt.tif", lab)
    return d


def test_predict_prints_the_output_path_only_and_reports_on_stderr(files, tmp_path, monkeypatch, cli):
    monkeypatch.delenv("SLICEWISE_NO_PROGRESS", raising=False)
    code, out, err = cli(
        [
            "predict",
            files / "m.pt",
            files / "raw.tif",
            tmp_path / "p.tif",
            "--tile",
            "64",
            "--block",
            "2,64,64",
            "--labels",
            "--threads",
            "1",
        ]
    )
    assert code == 0
    assert out.strip() == str(tmp_path / "p.tif")
    lines = err.splitlines()
    assert any(STATUS.match(ln) and "predicting 4×64×64 into" in ln and "2 block(s)" in ln for ln in lines), err
    assert any(re.search(r"predict: 4/4 \(100%\) tiles", ln) for ln in lines), (
        err
    )  # the periodic line of a batch log (tiles)


def test_evaluate_prints_only_the_table(files, tmp_path, monkeypatch, cli):
    monkeypatch.delenv("SLICEWISE_NO_PROGRESS", raising=False)
    code, out, err = cli(["evaluate", files / "gt.tif", files / "gt.tif", "--block", "1,64,64"])
    assert code == 0 and "dice" in out.lower()
    assert not any(STATUS.match(ln) for ln in out.splitlines())
    assert "evaluating blocks: 4 items to do" in err


def test_train_results_on_stdout_lightning_and_status_on_stderr(tmp_path, monkeypatch, cli):
    monkeypatch.delenv("SLICEWISE_NO_PROGRESS", raising=False)
    code, out, err = cli(
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
            "--steps",
            "2",
            "--out",
            tmp_path / "run",
        ]
    )
    assert code == 0
    assert [ln.split()[0] for ln in out.splitlines()] == ["run", "best", "last", "config"]
    assert "Epoch" not in out and "it/s" not in out  # no Lightning bar on stdout
    assert re.search(r"training tf_efficientnet_lite0 uniform \(2 steps\)", err)
    assert re.search(r"training uniform: 2/2 \(100%\) steps", err)


def _help_texts() -> list[tuple[str, str]]:
    from tests.cli.test_help import COMMANDS

    return [(" ".join(c), c) for c in COMMANDS]


@pytest.mark.parametrize("name, command", _help_texts(), ids=[n for n, _ in _help_texts()])
def test_help_texts_offer_no_n5_and_threads_where_work_is_done(name, command, cli):
    code, out, _ = cli([*command, "--help"])
    assert code == 0
    assert "N5" not in out, f"`slicewise {name} --help` lists N5, which is refused (zarr 3 dropped it)"
    if command[0] in ("train", "predict", "demo", "study", "audit", "evaluate", "segment") and command != ("audit",):
        assert "--threads" in out


def test_errors_say_error_lowercase_everywhere():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "slicewise"
    offenders = [
        f"{p.relative_to(root)}:{i}"
        for p in root.rglob("*.py")
        for i, ln in enumerate(p.read_text().splitlines(), 1)
        if re.search(r"""["'](Error|ERROR):""", ln)
    ]
    assert not offenders, offenders
