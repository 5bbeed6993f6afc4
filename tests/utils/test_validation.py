"""Untrusted metadata: one validated model per file kind, one-line errors naming file and field, confined paths;
special files refused before anything opens them (slicewise.utils.validation, slicewise.utils.inputs)."""

from __future__ import annotations

import os
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import Field

from slicewise.errors import InputError
from slicewise.utils.inputs import check_input_path, check_model_file
from slicewise.utils.validation import MetadataModel, confined_path, parse_metadata


class Item(MetadataModel):
    name: str
    size: int = Field(ge=1)


class Doc(MetadataModel):
    items: list[Item]


@pytest.mark.parametrize(
    "data, field",
    [
        ({"items": "x"}, "items"),
        ({"items": [{"size": 1}]}, "items.0.name"),
        ({"items": [{"name": "a", "size": 0}]}, "items.0.size"),
        ({}, "items"),
    ],
)
def test_a_bad_field_is_one_line_naming_file_and_field(data, field):
    with pytest.raises(InputError) as err:
        parse_metadata(Doc, data, "/x/meta.json", "fix it")
    text = str(err.value)
    assert (
        text.startswith("/x/meta.json: field ") and repr(field) in text and text.endswith("fix it") and "\n" not in text
    )


def test_not_a_mapping_is_refused_and_extra_keys_are_kept():
    with pytest.raises(InputError, match="is list, not a mapping"):
        parse_metadata(Doc, [1], "m.json", "fix")
    doc = parse_metadata(Doc, {"items": [{"name": "a", "size": 2, "color": "red"}], "other": 1}, "m.json", "fix")
    assert doc.items[0].size == 2 and doc.model_dump()["other"] == 1


@pytest.mark.parametrize("rel", ["../x", "a/../../x", "/etc/passwd", "C:/x", "a\\..\\x"])
def test_paths_that_leave_the_container_are_refused(tmp_path, rel):
    with pytest.raises(InputError, match="field 'path'"):
        confined_path(tmp_path, rel, "meta.json", "path")


def test_a_symlink_out_of_the_container_is_refused(tmp_path):
    (tmp_path / "inner").mkdir()
    os.symlink(tmp_path, tmp_path / "inner" / "up")
    with pytest.raises(InputError, match="leaves"):
        confined_path(tmp_path / "inner", "up/secret", "meta.json", "path")
    assert confined_path(tmp_path, "inner/a", "m", "path") == tmp_path / "inner" / "a"


@given(st.lists(st.sampled_from(["a", "b", "..", "."]), min_size=1, max_size=6))
def test_a_confined_path_never_resolves_outside(parts):
    root = os.path.realpath("/tmp")
    try:
        p = confined_path(root, "/".join(parts), "m", "f")
    except InputError:
        return
    assert os.path.realpath(p).startswith(root)


def test_special_files_are_refused_without_opening_them(tmp_path):
    os.mkfifo(tmp_path / "pipe.tif")
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(tmp_path / "sock"))
    s.close()
    os.symlink(tmp_path / "b", tmp_path / "a")
    os.symlink(tmp_path / "a", tmp_path / "b")
    for name, kind in (("pipe.tif", "FIFO"), ("sock", "socket"), ("a", "symbolic link loop")):
        with pytest.raises(InputError, match=kind):
            check_input_path(tmp_path / name)
    with pytest.raises(InputError, match="character device"):
        check_input_path("/dev/null", "labels")
    with pytest.raises(InputError, match="model file .* FIFO"):
        check_model_file(tmp_path / "pipe.tif")


def test_regular_files_folders_and_missing_paths_pass(tmp_path):
    (tmp_path / "f.tif").write_bytes(b"x")
    for p in (tmp_path / "f.tif", tmp_path, tmp_path / "missing.tif", tmp_path / "f.tif" / "below"):
        assert check_input_path(p) == p
