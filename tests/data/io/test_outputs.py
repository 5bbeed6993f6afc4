"""Output paths that know their format (data.io.outputs) over the write-then-rename mechanism (utils.atomic): claims,
writability checks before work, atomic renames, replacing only outputs of the same kind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from slicewise.data.io.outputs import atomic_path, check_output_path
from slicewise.errors import InputError
from slicewise.utils.atomic import claim_output, lock_path
from slicewise.utils.ownership import MARKER


def test_second_writer_is_refused_while_first_holds_the_claim(tmp_path):
    out = tmp_path / "pred.tif"
    code = (
        "import sys, time; from slicewise.utils.atomic import claim_output\n"
        f"with claim_output({str(out)!r}):\n    print('held', flush=True); time.sleep(30)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(InputError, match="being written by another slicewise process"):
            with atomic_path(out):
                pass
        assert not out.exists()
    finally:
        proc.kill()
        proc.wait()


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    out = tmp_path / "pred.zarr"
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(proc.stdout)
    import socket

    lock_path(out).write_text(f"{dead_pid} {socket.gethostname()}")
    with claim_output(out):
        assert lock_path(out).read_text().split()[0] == str(os.getpid())
    assert not lock_path(out).exists()


def test_claims_are_reentrant_in_one_process(tmp_path):
    out = tmp_path / "x.h5"
    with claim_output(out):
        with atomic_path(out) as tmp:
            tmp.write_bytes(b"1")
        assert lock_path(out).exists()
    assert out.read_bytes() == b"1" and not lock_path(out).exists()


def test_output_under_a_regular_file_is_refused_before_work(tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(InputError, match="is a file, not a folder"):
        check_output_path(f / "sub" / "out.tif")


def test_read_only_folder_is_refused_before_work(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(InputError, match="not writable"):
            check_output_path(ro / "out.tif")
    finally:
        ro.chmod(0o755)


def test_failed_write_leaves_nothing(tmp_path):
    out = tmp_path / "a.json"
    with pytest.raises(RuntimeError):
        with atomic_path(out) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.skipif(not hasattr(__import__("signal"), "SIGKILL"), reason="needs SIGKILL")
def test_leftovers_of_a_killed_writer_are_removed_by_the_next_claim(tmp_path):
    """A writer killed with SIGKILL leaves its temporary sibling; the next writer of the same output removes it
    (and only it: a resumable job's state and other outputs' files stay)."""
    import signal

    out = tmp_path / "seg.zarr"
    code = (
        "import sys, time\n"
        "from slicewise.data.io.outputs import atomic_path\n"
        f"with atomic_path({str(out)!r}) as tmp:\n"
        "    tmp.mkdir(); (tmp / 'chunk').write_text('x')\n"
        "    print('written', flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "written"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    keep = [tmp_path / ".seg.partial.zarr", tmp_path / ".seg.zarr.state", tmp_path / ".other.tmp-0123abcd.zarr"]
    for p in keep:
        p.mkdir()
    left = sorted(p.name for p in tmp_path.iterdir())
    assert any(".seg.tmp-" in n for n in left) and lock_path(out).exists()
    with atomic_path(out) as tmp:
        tmp.mkdir()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["seg.zarr", *(p.name for p in keep)])


# --- output paths: never delete what is not an output of the kind written; never an input; a real name ---


def _user_folder(path):
    """A folder at ``path`` holding a user's file; returns that file."""
    path.mkdir(parents=True)
    keep = path / "important.txt"
    keep.write_text("keep")
    return keep


@pytest.mark.parametrize(
    "name", ["out.json", "out.tif", "out.tiff", "out.h5", "out.hdf5", "out.zip", "out.csv", "out.png"]
)
def test_folder_at_a_file_output_is_refused_even_with_overwrite(tmp_path, name):
    keep = _user_folder(tmp_path / name)
    for overwrite in (False, True):
        with pytest.raises(InputError, match=r"is a folder, not a file: give a file path"):
            check_output_path(tmp_path / name, overwrite=overwrite)
    with pytest.raises(InputError, match="is a folder, not a file"):
        with atomic_path(tmp_path / name, overwrite=True) as tmp:
            tmp.write_text("new")
    assert keep.read_text() == "keep" and sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_write_json_never_replaces_a_folder_whatever_its_name(tmp_path):
    """write_json writes a file: a folder without a file suffix is refused too (kind="file")."""
    from slicewise.utils.atomic import write_json

    keep = _user_folder(tmp_path / "jdir")
    with pytest.raises(InputError, match="jdir is a folder, not a file"):
        write_json(tmp_path / "jdir", {"a": 1}, overwrite=True)
    assert keep.read_text() == "keep" and sorted(p.name for p in tmp_path.iterdir()) == ["jdir"]


@pytest.mark.parametrize("kind, name", [("zarr", "x.zarr"), ("report", "rep"), ("dataset", "isbi2012")])
def test_folder_output_replaces_only_a_folder_of_its_kind(tmp_path, kind, name):
    from slicewise.data.io.formats import folder_kind

    keep = _user_folder(tmp_path / name)
    with pytest.raises(
        InputError, match=rf"{name} already exists and is a folder but not .*not replaced even with --overwrite"
    ):
        check_output_path(tmp_path / name, overwrite=True, kind=kind)
    with pytest.raises(InputError, match="is a folder but not"):
        with atomic_path(tmp_path / name, overwrite=True, kind=kind) as tmp:
            tmp.mkdir()
    assert keep.read_text() == "keep"
    markers = {"zarr": [".zgroup"], "report": ["index.html", "report.json"], "dataset": ["metadata.json"]}[kind]
    for m in markers:
        (tmp_path / name / m).write_text("{}")
    assert folder_kind(tmp_path / name) == kind
    with pytest.raises(InputError, match="already exists: pass --overwrite"):
        check_output_path(tmp_path / name, overwrite=False, kind=kind)
    with pytest.raises(InputError, match="holds files slicewise did not write"):  # the user's file is never removed
        check_output_path(tmp_path / name, overwrite=True, kind=kind)
    with pytest.raises(InputError, match="holds files slicewise did not write"):
        with atomic_path(tmp_path / name, overwrite=True, kind=kind) as tmp:
            tmp.mkdir()
    assert keep.read_text() == "keep"
    keep.unlink()
    assert check_output_path(tmp_path / name, overwrite=True, kind=kind) == tmp_path / name
    with atomic_path(tmp_path / name, overwrite=True, kind=kind) as tmp:
        tmp.mkdir()
        for m in markers:
            (tmp / m).write_text("new")
    assert sorted(p.name for p in (tmp_path / name).iterdir()) == sorted(
        [*markers, MARKER]
    )  # the old output was replaced


def test_zarr_suffix_means_a_zarr_store_and_a_file_there_is_kept(tmp_path):
    (tmp_path / "f.zarr").write_text("a user's text file")
    with pytest.raises(InputError, match=r"f.zarr already exists and is a file, not a Zarr store"):
        check_output_path(tmp_path / "f.zarr", overwrite=True)
    other = tmp_path / "rep"  # a report folder is not a Zarr store either
    other.mkdir()
    (other / "index.html").write_text("")
    (other / "report.json").write_text("{}")
    with pytest.raises(InputError, match="rep already exists and is a folder but not a Zarr store"):
        check_output_path(other, overwrite=True, kind="zarr")
    assert (tmp_path / "f.zarr").read_text() == "a user's text file"


def test_publish_refuses_to_replace_a_folder_by_a_file_or_another_kind(tmp_path):
    """The last guard, for writers that publish without atomic_path (the prediction and label stores)."""
    from slicewise.data.io.outputs import publish

    keep = _user_folder(tmp_path / "out.tif")
    tmp = tmp_path / ".out.tmp-0123abcd.tif"
    tmp.write_text("new")
    with pytest.raises(InputError, match="is a folder, not a file"):
        publish(tmp, tmp_path / "out.tif")
    store = tmp_path / ".s.tmp-0123abcd.zarr"
    store.mkdir()
    (store / ".zgroup").write_text("{}")
    keep2 = _user_folder(tmp_path / "s.zarr")
    with pytest.raises(InputError, match="is a folder but not a Zarr store"):
        publish(store, tmp_path / "s.zarr")
    assert keep.read_text() == "keep" and keep2.read_text() == "keep"


@pytest.mark.parametrize("overwrite", [False, True])
def test_output_that_is_an_input_is_refused(tmp_path, monkeypatch, overwrite):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in").mkdir()
    raw = tmp_path / "in" / "raw.h5"
    raw.write_bytes(b"data")
    (tmp_path / "in" / "raw.zarr").mkdir()
    (tmp_path / "in" / "raw.zarr" / ".zgroup").write_text("{}")
    os.symlink(raw, tmp_path / "link.h5")
    os.link(raw, tmp_path / "hard.h5")
    cases = [
        (raw, [raw]),  # the same path
        ("in/raw.h5", [raw]),  # relative output, absolute input
        (raw, ["in/../in/raw.h5"]),  # absolute output, relative input with ..
        ("in/raw.h5", ["in/raw.h5:data"]),  # file.h5:key input
        ("in/raw.h5", ["in/raw.h5/grp/sub"]),  # file.h5/key input
        ("link.h5", [raw]),  # output is a symlink to the input
        (raw, ["link.h5"]),  # input is a symlink to the output
        ("hard.h5", [raw]),  # a hard link
        ("in/raw.zarr", ["in/raw.zarr/labels/0"]),  # a store and an array inside it
        ("in/raw.zarr", [Path("in/raw.zarr")]),
    ]
    for out, inputs in cases:
        with pytest.raises(InputError, match=r"is also an input: choose another output path$"):
            check_output_path(out, overwrite=overwrite, inputs=[None, object(), *inputs])
    with pytest.raises(InputError, match=r"output in holds the input in/raw.h5: choose another output path"):
        check_output_path("in", overwrite=overwrite, inputs=["in/raw.h5"], kind="report")
    assert raw.read_bytes() == b"data" and (tmp_path / "in" / "raw.zarr" / ".zgroup").is_file()
    # other inputs, missing inputs, non-path inputs (arrays, models) and encoder specs are no obstacle
    other = tmp_path / "other.h5"
    other.write_bytes(b"x")
    assert check_output_path(
        "out.h5", inputs=[other, "missing.h5", "tf_efficientnet_lite0:skips=0111", object()]
    ) == Path("out.h5")


@pytest.mark.parametrize("name", [".", "..", "", "sub/.."])
@pytest.mark.parametrize("overwrite", [False, True])
def test_output_without_a_name_is_refused_and_leaves_nothing(tmp_path, monkeypatch, name, overwrite):
    from slicewise.utils.atomic import temp_sibling, write_json

    work = tmp_path / "a" / "b"
    (work / "sub").mkdir(parents=True)
    monkeypatch.chdir(work)
    with pytest.raises(
        InputError, match=r"names no file of its own: give a path that ends in a new file name, e\.g\. "
    ):
        check_output_path(name, overwrite=overwrite)
    with pytest.raises(InputError, match="names no file of its own"):
        write_json(name, {"a": 1}, overwrite=overwrite)
    with pytest.raises(InputError, match="names no folder of its own"):
        check_output_path(name, overwrite=overwrite, kind="report")
    with pytest.raises(InputError, match="names no file or folder of its own"):
        temp_sibling(name)
    every = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert every == ["a", "a/b", "a/b/sub"]  # no temporary, backup or lock file anywhere


def test_unknown_output_kind_is_a_programming_error(tmp_path):
    with pytest.raises(ValueError, match="unknown output kind"):
        check_output_path(tmp_path / "x", kind="folder")


def test_a_png_slice_folder_replaces_only_an_earlier_png_slice_folder(tmp_path):
    from slicewise.data.io import open_volume, write_volume

    vol = np.arange(2 * 8 * 8, dtype=np.uint8).reshape(2, 8, 8)
    user = tmp_path / "slices"
    user.mkdir()
    (user / "notes.txt").write_text("keep")
    with pytest.raises(InputError, match="not a folder of PNG slices"):
        write_volume(user, vol, overwrite=True)
    assert (user / "notes.txt").read_text() == "keep"
    out = write_volume(tmp_path / "pngs", vol)
    write_volume(out, vol[::-1].copy(), overwrite=True)  # an earlier PNG-slice output is replaced
    np.testing.assert_array_equal(np.asarray(open_volume(out)[...]), vol[::-1])
