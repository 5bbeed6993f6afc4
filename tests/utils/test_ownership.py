"""Output-folder ownership: only what a command provably wrote is ever removed (:mod:`slicewise.utils.ownership`)."""

from __future__ import annotations

import json
import os

import pytest

from slicewise.errors import InputError
from slicewise.utils.ownership import (
    MARKER,
    check_folder,
    foreign_entries,
    mark_owned,
    prepare_run_folder,
    read_manifest,
    record,
    remove_owned,
)


def _tree(root, files):
    for rel in files:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(rel)


def test_remove_owned_removes_only_listed_entries_and_prunes_emptied_folders(tmp_path):
    d = tmp_path / "run"
    _tree(d, ["config.yaml", "checkpoints/last.ckpt", "logs/version_0/metrics.csv", "logs/version_0/hparams.yaml"])
    mark_owned(d, "train", ["config.yaml", "checkpoints/last.ckpt"])
    record(d, d / "logs" / "version_0", dirs=True)
    assert read_manifest(d)["entries"] == ["checkpoints/last.ckpt", "config.yaml", "logs/version_0/"]
    assert check_folder(d, "train") == "ours"
    (d / "checkpoints" / "important.log").write_text("mine")
    with pytest.raises(InputError, match=r"holds files slicewise did not write \(checkpoints/important.log\)"):
        check_folder(d, "train")
    removed = remove_owned(d)
    assert sorted(removed) == ["checkpoints/last.ckpt", "config.yaml", "logs/version_0/"]
    assert (d / "checkpoints" / "important.log").read_text() == "mine"  # not listed: kept, and its folder too
    assert not (d / "logs").exists() and sorted(p.name for p in d.iterdir()) == [MARKER, "checkpoints"]
    assert read_manifest(d)["entries"] == []


def test_remove_owned_never_follows_a_symlink_out_of_the_folder(tmp_path):
    outside = tmp_path / "outside"
    _tree(outside, ["precious.ckpt", "keep/a.txt"])
    d = tmp_path / "run"
    d.mkdir()
    os.symlink(outside, d / "checkpoints")  # a listed entry behind a linked folder
    os.symlink(outside / "keep", d / "logs")  # a listed folder entry that is a link
    mark_owned(d, "train", ["checkpoints/precious.ckpt", "logs/"])
    remove_owned(d)
    assert (outside / "precious.ckpt").exists() and (outside / "keep" / "a.txt").exists()
    assert not (d / "logs").exists()  # the link itself was listed: unlinked, its target untouched


@pytest.mark.parametrize(
    "entries, match",
    [
        (["../outside.txt"], "a path outside its folder"),
        (["/etc/passwd"], "a path outside its folder"),
        ([3], "entries must be relative paths"),
    ],
)
def test_a_forged_manifest_is_refused_in_one_line_and_removes_nothing(tmp_path, entries, match):
    (tmp_path / "outside.txt").write_text("x")
    d = tmp_path / "run"
    d.mkdir()
    (d / MARKER).write_text(
        json.dumps({"slicewise": "output-folder", "version": 1, "kind": "train", "entries": entries})
    )
    with pytest.raises(InputError, match=match):
        remove_owned(d)
    assert (tmp_path / "outside.txt").exists()


@pytest.mark.parametrize("text", ["{not json", json.dumps([1, 2]), json.dumps({"kind": "train", "entries": []})])
def test_a_damaged_or_foreign_marker_is_one_line(tmp_path, text):
    (tmp_path / MARKER).write_text(text)
    with pytest.raises(InputError, match=MARKER):
        check_folder(tmp_path, "train")


def test_a_folder_without_marker_is_adopted_only_with_the_legacy_layout_and_its_proof(tmp_path):
    legacy = {"config.yaml", "inputs.json", "checkpoints/last.ckpt"}.__contains__
    d = tmp_path / "old"
    _tree(d, ["config.yaml", "inputs.json", "checkpoints/last.ckpt", ".x.lock"])
    assert prepare_run_folder(d, "train", legacy=legacy, legacy_proof=["inputs.json"]) == "legacy"
    assert read_manifest(d)["entries"] == ["checkpoints/last.ckpt", "config.yaml", "inputs.json"]
    only_config = tmp_path / "cfg-only"
    _tree(only_config, ["config.yaml"])  # a user's own config, not a run: no proof
    with pytest.raises(InputError, match=r"holds files slicewise did not write \(config.yaml\)"):
        prepare_run_folder(only_config, "train", legacy=legacy, legacy_proof=["inputs.json"])
    assert not (only_config / MARKER).exists()


def test_other_kinds_symlinked_folders_and_files_are_refused(tmp_path):
    d = tmp_path / "study"
    mark_owned(d, "study")
    with pytest.raises(InputError, match="holds a slicewise study output, not a train one"):
        check_folder(d, "train")
    os.symlink(d, tmp_path / "link")
    with pytest.raises(InputError, match="is a symbolic link"):
        check_folder(tmp_path / "link", "study")
    (tmp_path / "f").write_text("x")
    with pytest.raises(InputError, match="is a file, not a folder"):
        check_folder(tmp_path / "f", "train")
    assert check_folder(tmp_path / "new", "train") == "new" and check_folder(tmp_path / "empty-later", "x") == "new"


def test_slicewise_hidden_names_are_not_foreign(tmp_path):
    _tree(tmp_path, [".a.ckpt.lock", ".last.tmp-0123abcd.ckpt", ".x.old-89abcdef", ".p.partial.zarr/0/0", "user.txt"])
    assert foreign_entries(tmp_path, []) == ["user.txt"]
