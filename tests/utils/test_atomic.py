"""The format-free write-then-rename mechanism: single-file outputs, the backup rename, failed writes."""

from __future__ import annotations

import errno
import os

import pytest

from slicewise.errors import InputError, WriteError
from slicewise.utils.atomic import atomic_file, check_file_output, lock_path, replace_path, write_json


def test_atomic_file_publishes_only_a_complete_file(tmp_path):
    out = tmp_path / "a.csv"
    with atomic_file(out) as tmp:
        tmp.write_text("x")
        assert not out.exists() and tmp.parent == tmp_path and tmp.suffix == ".csv"
        assert lock_path(out).exists()
    assert out.read_text() == "x" and not lock_path(out).exists()
    with pytest.raises(RuntimeError):
        with atomic_file(out) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert out.read_text() == "x" and sorted(p.name for p in tmp_path.iterdir()) == ["a.csv"]


def test_a_file_output_is_checked_before_work(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(InputError, match="is a folder, not a file"):
        check_file_output(tmp_path / "d", overwrite=True)
    (tmp_path / "f.json").write_text("{}")
    with pytest.raises(InputError, match="already exists"):
        check_file_output(tmp_path / "f.json")
    assert check_file_output(tmp_path / "f.json", overwrite=True) == tmp_path / "f.json"
    with pytest.raises(InputError, match="names no file of its own"):
        check_file_output("..")
    with pytest.raises(InputError, match="is a file, not a folder"):
        check_file_output(tmp_path / "f.json" / "x.json")


def test_replace_path_keeps_old_or_new_and_never_puts_a_file_over_a_folder(tmp_path):
    old, new = tmp_path / "out.txt", tmp_path / ".new.txt"
    old.write_text("old")
    new.write_text("new")
    assert replace_path(new, old) == old and old.read_text() == "new" and not new.exists()
    (tmp_path / "dir").mkdir()
    new.write_text("new")
    with pytest.raises(InputError, match="is a folder, not a file"):
        replace_path(new, tmp_path / "dir")
    assert (tmp_path / "dir").is_dir()


def test_write_json_on_a_failed_rename_is_one_line_and_keeps_the_previous_file(tmp_path, monkeypatch):
    out = write_json(tmp_path / "r.json", {"a": 1})

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(WriteError, match="disk is full") as err:
        write_json(out, {"a": 2}, overwrite=True)
    assert "\n" not in str(err.value)
    monkeypatch.undo()
    assert out.read_text().strip() == '{\n  "a": 1\n}' and sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]
