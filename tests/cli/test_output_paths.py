"""Output paths on the command line: ``--overwrite`` replaces only an output of the kind written, an output is
never one of the inputs, and an output must end in a name; each refused in one line (exit 2) before any work,
with nothing deleted and nothing left behind."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import tifffile


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """Label maps, a probability map (TIFF and HDF5), raw data in HDF5 and a model file in ``tmp_path/in``."""
    import h5py

    d = tmp_path / "in"
    d.mkdir()
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, (4, 16, 16)).astype(np.uint8)
    tifffile.imwrite(d / "l3.tif", labels)
    tifffile.imwrite(d / "pred.tif", labels)
    tifffile.imwrite(d / "fg.tif", np.where(labels > 0, 0.8, 0.1).astype(np.float32))
    with h5py.File(d / "raw.h5", "w") as f:
        f["data"] = rng.integers(0, 256, (4, 16, 16)).astype(np.uint8)
        f["grp/sub"] = np.zeros(3)
    (d / "m.pt").write_bytes(b"not loaded: the output is refused first")
    return d


def _user_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    keep = path / "important.txt"
    keep.write_text("keep")
    return keep


def _refused(result: tuple[int, str, str], match: str) -> None:
    """Exit 2 with one ``error:`` line matching ``match`` and no traceback."""
    code, _, err = result
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    import re

    assert re.search(match, lines[0]), lines[0]


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --- 1. --overwrite never deletes what is not an output of the kind written ---


def test_folder_at_a_file_output_is_kept_for_every_command(files, tmp_path, cli):
    d, out = files, tmp_path / "out"
    out.mkdir()
    commands = {
        "jdir": ["evaluate", d / "l3.tif", d / "l3.tif", "--json", out / "jdir"],
        "e.json": ["evaluate", d / "l3.tif", d / "l3.tif", "--json", out / "e.json"],
        "d1.tif": ["predict", d / "m.pt", d / "raw.h5:data", out / "d1.tif"],
        "d3.h5": ["predict", d / "m.pt", d / "raw.h5:data", out / "d3.h5"],
        "d2.tif": ["segment", d / "fg.tif", out / "d2.tif"],
        "w.json": ["audit", "weights", "tf_efficientnet_lite0", "--weights", "random", "--json", out / "w.json"],
        "a.json": ["audit", "attribution", d / "m.pt", d / "raw.h5:data", "--json", out / "a.json"],
        "pkg.zip": ["export", "bioimageio", d / "m.pt", out / "pkg.zip"],
    }
    keeps = [_user_folder(out / name) for name in commands]
    for name, argv in commands.items():
        for extra in ([], ["--overwrite"]):
            _refused(cli([*argv, *extra]), rf"output .*{name} is a folder, not a file: give a file path")
    assert all(k.read_text() == "keep" for k in keeps)
    assert _names(out) == sorted(commands)  # no temporary or lock file left


def test_plain_folder_at_a_zarr_or_report_output_is_kept(files, tmp_path, cli):
    d = files
    zarr_keep = _user_folder(tmp_path / "notzarr.zarr")
    rep_keep = _user_folder(tmp_path / "rep")
    _refused(
        cli(["segment", d / "fg.tif", tmp_path / "notzarr.zarr", "--overwrite"]),
        r"notzarr.zarr already exists and is a folder but not a Zarr store, "
        r"so it is not replaced even with --overwrite",
    )
    _refused(
        cli(["predict", d / "m.pt", d / "raw.h5:data", tmp_path / "notzarr.zarr", "--overwrite"]),
        r"notzarr.zarr already exists and is a folder but not a Zarr store",
    )
    _refused(
        cli(
            [
                "audit",
                "weights",
                "tf_efficientnet_lite0",
                "--weights",
                "random",
                "--report",
                tmp_path / "rep",
                "--overwrite",
            ]
        ),
        r"rep already exists and is a folder but not a slicewise report folder",
    )
    assert zarr_keep.read_text() == "keep" and rep_keep.read_text() == "keep"
    assert _names(tmp_path / "notzarr.zarr") == ["important.txt"] and _names(tmp_path / "rep") == ["important.txt"]


def test_a_zarr_store_of_ours_is_still_replaced_with_overwrite(files, tmp_path, cli):
    d, out = files, tmp_path / "lab.zarr"
    assert cli(["segment", d / "fg.tif", out])[0] == 0
    _refused(cli(["segment", d / "fg.tif", out]), r"already exists: pass --overwrite")
    code, stdout, err = cli(["segment", d / "fg.tif", out, "--overwrite", "--min-size", "1000"])
    assert code == 0, err
    assert "0 objects" in stdout


def test_a_report_folder_of_ours_is_still_replaced_with_overwrite(tmp_path, cli):
    rep = tmp_path / "rep"
    argv = ["audit", "weights", "tf_efficientnet_lite0", "--weights", "random", "--report", rep]
    assert cli(argv)[0] == 0
    assert {"index.html", "report.json"} <= set(_names(rep))
    (rep / "report.json").write_text("{}")  # changed, to see that the rerun replaced it
    code, _, err = cli([*argv, "--overwrite"])
    assert code == 0, err
    assert (rep / "report.json").read_text() != "{}"


def test_data_fetch_overwrite_keeps_a_folder_that_is_no_dataset(tmp_path, cli):
    src = tmp_path / "dl"
    src.mkdir()
    a = np.arange(2 * 8 * 8, dtype=np.uint8).reshape(2, 8, 8)
    for name in ("train-volume.tif", "train-labels.tif", "test-volume.tif"):
        tifffile.imwrite(src / name, a)
    keep = _user_folder(tmp_path / "d" / "isbi2012")
    argv = ["data", "fetch", "isbi2012", "--from", src, "--dest", tmp_path / "d"]
    _refused(cli([*argv, "--overwrite"]), r"isbi2012 already exists and is a folder but not a slicewise dataset folder")
    assert keep.read_text() == "keep"
    keep.unlink()
    (tmp_path / "d" / "isbi2012").rmdir()
    assert cli(argv)[0] == 0
    code, _, err = cli([*argv, "--overwrite"])  # a converted dataset is replaced
    assert code == 0, err
    assert (tmp_path / "d" / "isbi2012" / "metadata.json").is_file()


# --- 2. an output is never one of the inputs ---


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_output_equal_to_an_input_is_refused_for_every_command(files, tmp_path, cli, monkeypatch, overwrite):
    import h5py

    d = files
    monkeypatch.chdir(tmp_path)
    os.symlink(d / "pred.tif", tmp_path / "link.tif")
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    commands = [
        ["predict", d / "m.pt", d / "raw.h5:data", d / "raw.h5"],  # file.h5:key input, file.h5 output
        ["predict", d / "m.pt", "in/raw.h5", d / "raw.h5", "--key", "data"],  # relative input, absolute output
        ["segment", d / "fg.tif", "in/fg.tif"],  # absolute input, relative output
        ["evaluate", d / "pred.tif", d / "l3.tif", "--json", d / "pred.tif"],
        ["evaluate", d / "pred.tif", d / "l3.tif", "--json", "link.tif"],  # a symlink to the prediction
        ["evaluate", d / "l3.tif", d / "l3.tif", "--kind", "instance", "--prob", d / "fg.tif", "--json", "in/fg.tif"],
        ["audit", "attribution", d / "m.pt", d / "raw.h5:data", "--json", d / "m.pt"],
        ["audit", "shift", d / "m.pt", d / "pred.tif", "--shift", "contrast=0.5", "--json", "in/pred.tif"],
    ]
    for argv in commands:
        _refused(cli([*argv, *overwrite]), r"is also an input: choose another output path$")
    _refused(
        cli(["audit", "attribution", d / "m.pt", d / "pred.tif", "--report", d, *overwrite]),
        r"output .*in holds the input .*: choose another output path$",
    )
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before  # every input intact, nothing left beside them
    with h5py.File(d / "raw.h5") as f:
        assert sorted(f) == ["data", "grp"]


def test_export_and_data_fetch_refuse_their_input_as_output(files, tmp_path, cli):
    d = files
    (d / "m.zip").write_bytes(b"a model given as a zip")
    _refused(cli(["export", "bioimageio", d / "m.zip", d / "m.zip", "--overwrite"]), r"is also an input")
    src = tmp_path / "d" / "isbi2012"  # the source folder is where the dataset would go
    src.mkdir(parents=True)
    for name in ("train-volume.tif", "train-labels.tif", "test-volume.tif"):
        tifffile.imwrite(src / name, np.zeros((2, 8, 8), np.uint8))
    _refused(
        cli(["data", "fetch", "isbi2012", "--from", src, "--dest", tmp_path / "d", "--overwrite"]), r"is also an input"
    )
    assert _names(src) == ["test-volume.tif", "train-labels.tif", "train-volume.tif"]
    assert (d / "m.zip").read_bytes() == b"a model given as a zip"


# --- 3. an output path must end in a name ---


@pytest.mark.parametrize("name", [".", "..", ""])
@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_json_without_a_name_is_refused_and_leaves_nothing(files, tmp_path, cli, monkeypatch, name, overwrite):
    d = files
    work = tmp_path / "dd" / "inner"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    _refused(
        cli(["evaluate", d / "l3.tif", d / "l3.tif", "--json", name, *overwrite]),
        r"names no file of its own: give a path that ends in a new file name, e\.g\. (\.\./)?result\.json$",
    )
    _refused(
        cli(["audit", "weights", "tf_efficientnet_lite0", "--weights", "random", "--json", name, *overwrite]),
        r"names no file of its own",
    )
    _refused(
        cli(["audit", "weights", "tf_efficientnet_lite0", "--weights", "random", "--report", name, *overwrite]),
        r"names no folder of its own",
    )
    assert _names(tmp_path / "dd") == ["inner"] and _names(work) == []  # no ....tmp-* file, no lock
