"""``slicewise train``: a tiny run from the command line, and one-line errors."""

from __future__ import annotations

import pytest
import yaml

from slicewise.cli import main

TINY = [
    "data.synthetic.shape=[8,64,64]",
    "data.patch_size=64",
    "data.batch_size=2",
    "data.num_workers=0",
    "data.val_patches=1",
    "model.weights=random",
    "model.decoder_channels=[16,16,8,8,8]",
    "trainer.max_steps=2",
    "trainer.val_every=2",
    "trainer.log_every=1",
]


def test_train_command_writes_a_run_folder(tmp_path, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"seed": 3, "optim": {"lr": 5e-4}}))
    main(["train", str(cfg), *TINY, "--out", str(tmp_path / "run")])
    out = capsys.readouterr().out
    assert "best model" in out and str(tmp_path / "run" / "best.pt") in out
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["seed"] == 3 and saved["optim"]["lr"] == 5e-4 and saved["trainer"]["max_steps"] == 2
    assert (tmp_path / "run" / "last.pt").is_file() and (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.parametrize(
    "args, expected",
    [
        (["trainer.max_step=5"], "unknown key 'trainer.max_step' (did you mean 'max_steps'?)"),
        (["model.channel_init=rgbb"], "allowed values: rgb, repeat, uniform, mirror, random"),
        (["cfg.yaml", "extra"], "unexpected argument(s) extra"),
    ],
)
def test_bad_arguments_are_one_line_errors(args, expected, capsys):
    with pytest.raises(SystemExit) as ex:
        main(["train", *args])
    assert ex.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and expected in err


def test_resume_without_a_run_folder_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as ex:
        main(["train", "--resume", "--out", str(tmp_path / "nothing")])
    assert ex.value.code == 2 and "cannot resume" in capsys.readouterr().err


def test_a_train_run_prints_no_lightning_banner_and_records_its_environment(tmp_path):
    """Captured stderr of a real `slicewise train` process: slicewise's lines only, no "GPU available" / "💡 Tip"."""
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1", "SLICEWISE_NO_PROGRESS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "slicewise.cli", "train", *TINY, "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    for banner in (
        "GPU available",
        "TPU available",
        "HPU available",
        "LOCAL_RANK",
        "Tip",
        "litlogger",
        "litmodels",
        "Trainer.fit` stopped",
    ):
        assert banner not in proc.stderr, proc.stderr
    assert "training tf_efficientnet_lite0" in proc.stderr  # slicewise's own status line still shows
    recorded = json.loads((tmp_path / "run" / "inputs.json").read_text())
    assert recorded["environment"]["threads"]["torch"] == 1 and recorded["environment"]["device"]["type"] == "cpu"
    assert recorded["environment"]["seed"] == recorded["config"]["seed"]


def test_lightning_loggers_are_restored_after_a_run(tmp_path):
    import logging

    from slicewise.utils.progress import LIGHTNING_NOTICE_LOGGERS, quiet_lightning

    loggers = [logging.getLogger(n) for n in LIGHTNING_NOTICE_LOGGERS]
    before = [(lg.level, list(lg.filters), list(lg.handlers)) for lg in loggers]
    main(["train", *TINY, "--out", str(tmp_path / "run")])
    assert [(lg.level, list(lg.filters), list(lg.handlers)) for lg in loggers] == before
    with quiet_lightning():
        assert not logging.getLogger(LIGHTNING_NOTICE_LOGGERS[2]).filter(
            logging.LogRecord("x", logging.INFO, __file__, 1, "GPU available: False", None, None)
        )
        assert logging.getLogger(LIGHTNING_NOTICE_LOGGERS[2]).filter(
            logging.LogRecord("x", logging.WARNING, __file__, 1, "a warning", None, None)
        )
