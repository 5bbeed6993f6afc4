"""``slicewise data list / fetch / info``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from slicewise.cli import main
from slicewise.data import write_volume


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLICEWISE_CACHE", str(tmp_path / "cache"))


def _field(out: str, name: str) -> str:
    line = next(line for line in out.splitlines() if line.startswith(name + ":"))
    return line.split(":", 1)[1].strip()


def test_info_shared_isbi(shared_data: Path, cli) -> None:
    code, out, _ = cli(["data", "info", str(shared_data / "isbi2012" / "train-volume.tif")])
    assert code == 0
    assert _field(out, "shape").startswith("(30, 512, 512)") and _field(out, "dtype") == "uint8"
    code, out, _ = cli(["data", "info", str(shared_data / "isbi2012" / "train-labels.tif")])
    assert _field(out, "distinct values") == "2" and _field(out, "looks like") == "semantic labels [0, 255]"


def test_info_hdf5_key_instance_labels(tmp_path: Path, cli) -> None:
    ids = np.repeat(np.repeat(np.arange(1, 31, dtype=np.uint32).reshape(1, 5, 6), 8, 1), 8, 2).repeat(3, 0)
    write_volume(tmp_path / "s.h5", ids, key="volumes/labels/neuron_ids", voxel_size=(40, 4, 4))
    write_volume(tmp_path / "s.h5", np.zeros((3, 40, 48), np.uint8), key="volumes/raw")
    code, out, _ = cli(["data", "info", str(tmp_path / "s.h5"), "--key", "volumes/labels/neuron_ids"])
    assert code == 0
    assert _field(out, "shape").startswith("(3, 40, 48)") and _field(out, "dtype") == "uint32"
    assert _field(out, "range") == "1 .. 30" and _field(out, "distinct values") == "30"
    assert _field(out, "looks like") == "instance labels" and _field(out, "voxel size").startswith("40 x 4 x 4 nm")


@pytest.mark.parametrize(
    "args",
    [
        ("data", "info", "/definitely/missing.tif"),
        ("data", "info", "{tmp}/f.h5", "--key", "nope"),
        ("data", "fetch", "imagenet"),
        ("data", "fetch", "monuseg"),
        ("data", "fetch", "isbi2012", "--from", "/definitely/missing"),
    ],
)
def test_errors_exit_2_with_one_line(tmp_path: Path, args: tuple[str, ...], cli) -> None:
    write_volume(tmp_path / "f.h5", np.zeros((1, 2, 2), np.uint8), key="raw")
    code, out, err = cli([a.format(tmp=tmp_path) for a in args])
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err


def test_list_shows_all_entries(cli) -> None:
    code, out, _ = cli(["data", "list"])
    assert code == 0
    names = [line.split()[0] for line in out.strip().splitlines()[1:]]
    assert {"isbi2012", "snemi3d", "lucchi_pp", "mitoem_h", "cremi_c", "vnc", "monuseg", "glas", "gf_pa66"} <= set(
        names
    )
    assert "CC BY-NC-SA 4.0" in out


def test_fetch_from_local_files(tmp_path: Path, cli) -> None:
    src = tmp_path / "dl"
    src.mkdir()
    a = np.arange(2 * 8 * 8, dtype=np.uint8).reshape(2, 8, 8)
    for name in ("train-volume.tif", "train-labels.tif", "test-volume.tif"):
        tifffile.imwrite(src / name, a)
    code, out, _ = cli(["data", "fetch", "isbi2012", "--from", str(src), "--dest", str(tmp_path / "d")])
    assert code == 0 and out.strip() == str(tmp_path / "d" / "isbi2012")
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "d" / "isbi2012" / "train" / "labels.tif"), a)
    assert (tmp_path / "d" / "isbi2012" / "metadata.json").is_file()


def test_info_counts_nan_and_inf_instead_of_hiding_them(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    a = np.linspace(0, 1, 2 * 8 * 8, dtype=np.float32).reshape(2, 8, 8)
    a[0, 0, :3] = np.nan
    a[1, 2, 2] = np.inf
    a[1, 3, 3] = -np.inf
    write_volume(tmp_path / "f.tif", a)
    main(["data", "info", str(tmp_path / "f.tif")])
    out = capsys.readouterr().out
    assert "3 NaN, 1 +Inf, 1 -Inf" in out and "(finite values)" in out
    write_volume(tmp_path / "clean.tif", np.zeros((1, 4, 4), np.float32))
    main(["data", "info", str(tmp_path / "clean.tif")])
    assert "NaN" not in capsys.readouterr().out


def test_fetch_from_mismatched_files_is_refused_and_checksums_are_reported(tmp_path: Path, cli) -> None:
    src = tmp_path / "fake_isbi2"
    src.mkdir()
    tifffile.imwrite(src / "train-volume.tif", np.zeros((8, 64, 64), np.uint8))
    tifffile.imwrite(src / "train-labels.tif", np.zeros((8, 32, 64), np.uint8))
    tifffile.imwrite(src / "test-volume.tif", np.zeros((8, 64, 64), np.uint8))
    code, out, err = cli(["data", "fetch", "isbi2012", "--dest", tmp_path / "ds2", "--from", src])
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "have shape (8, 32, 64) but the raw volume (train-volume.tif) has (8, 64, 64)" in err
    assert not (tmp_path / "ds2" / "isbi2012").exists()
    tifffile.imwrite(src / "train-labels.tif", np.zeros((8, 64, 64), np.uint8))
    code, out, err = cli(["data", "fetch", "isbi2012", "--dest", tmp_path / "ds2", "--from", src])
    warned = [ln for ln in err.splitlines() if ln.startswith("warning:")]
    assert code == 0 and len(warned) == 2 and "not verified" in warned[0] and "published 30x512x512" in warned[1]
