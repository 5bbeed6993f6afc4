"""``slicewise train --out DIR`` never removes or replaces a file it did not write, whatever the flags."""

from __future__ import annotations

import pytest
import yaml

from slicewise.utils.ownership import MARKER, read_manifest

USER_FILES = {
    "notes.txt": "my notes",
    "checkpoints/important.log": "keep me",
    "logs/x": "mine",
    "inputs.json": '{"mine": 1}',
}


def _user_folder(d):
    for rel, text in USER_FILES.items():
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_text(text)
    return d


def _unchanged(d) -> bool:
    return (
        all((d / rel).read_text() == text for rel, text in USER_FILES.items())
        and not (d / MARKER).exists()
        and not (d / "config.yaml").exists()
    )


@pytest.mark.parametrize("flags", [[], ["--resume"], ["--restart"]])
def test_a_folder_of_the_users_files_is_refused_in_one_line_and_left_as_it_was(tmp_path, tiny_config, cli, flags):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config))
    d = _user_folder(tmp_path / "dir")
    code, _, err = cli(["train", cfg, "--out", d, *flags])
    assert (
        code == 2
        and err.count("\n") == 1
        and err.startswith(f"error: run folder {d} already exists and holds files slicewise did not write")
    )
    assert "whatever the flags" in err and _unchanged(d)


def test_a_config_inside_a_folder_that_is_no_run_is_neither_deleted_nor_replaced(tmp_path, tiny_config, cli):
    d = tmp_path / "dir"
    d.mkdir()
    (d / "config.yaml").write_text(yaml.safe_dump(tiny_config))
    for flags in ([], ["--restart"], ["--resume"]):
        code, _, err = cli(["train", d / "config.yaml", "--out", d, *flags])
        assert code == 2 and "holds files slicewise did not write (config.yaml)" in err, err
        assert yaml.safe_load((d / "config.yaml").read_text()) == tiny_config and sorted(
            p.name for p in d.iterdir()
        ) == ["config.yaml"]


def test_an_old_run_folder_is_adopted_its_config_read_before_a_restart_and_a_users_file_then_refused(
    tmp_path, tiny_config, cli
):
    """A run folder written before markers (same layout, no marker) still works; ``train DIR/config.yaml --out DIR
    --restart`` reads the config before anything is replaced; a file the user adds later is never removed."""
    from slicewise.training import train

    d = tmp_path / "run"
    train(tiny_config, out=d)
    (d / MARKER).unlink()  # the layout of a run from before this change
    code, _, err = cli(["train", d / "config.yaml", "--out", d, "--restart", "trainer.max_steps=2"])
    assert code == 0, err
    m = read_manifest(d)
    assert {"config.yaml", "inputs.json", "best.pt", "last.pt", "checkpoints/last.ckpt"} <= set(m["entries"])
    assert any(e.startswith("logs/version_") and e.endswith("/") for e in m["entries"])
    assert yaml.safe_load((d / "config.yaml").read_text())["trainer"]["max_steps"] == 2
    (d / "checkpoints" / "important.log").write_text("keep me")
    code, _, err = cli(["train", "--out", d, "--restart"])
    assert code == 2 and "holds files slicewise did not write (checkpoints/important.log)" in err
    assert (d / "checkpoints" / "important.log").read_text() == "keep me" and (d / "best.pt").is_file()
