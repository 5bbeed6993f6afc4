"""Size and range options read alike in every command (``slicewise.data.roi``): malformed sizes are refused,
empty ranges name the option typed, ranges beyond the volume are clipped with one warning line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile


@pytest.fixture
def files(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    tifffile.imwrite(tmp_path / "lab.tif", rng.integers(0, 3, (8, 16, 16)).astype(np.uint8))
    tifffile.imwrite(tmp_path / "prob.tif", rng.random((8, 16, 16)).astype(np.float32))
    return tmp_path


def _argv(command: str, d: Path) -> list:
    if command == "segment":
        return ["segment", d / "prob.tif", d / "out.tif"]
    return ["evaluate", d / "lab.tif", d / "lab.tif"]


@pytest.mark.parametrize("command", ["segment", "evaluate"])
@pytest.mark.parametrize(
    "option, value, match",
    [
        ("--block", "64x", "--block '64x' is not one or 3 integers"),
        ("--block", "4,", "--block '4,' is not one or 3 integers"),
        ("--block", ",4", "--block ',4' is not one or 3 integers"),
        ("--z", "5:2", "--z 5:2: the range is empty"),
        ("--roi", "0:4,9:3", "--roi 9:3: the range is empty"),
    ],
)
def test_bad_sizes_and_ranges_are_refused_naming_the_option(files, cli, command, option, value, match):
    code, out, err = cli([*_argv(command, files), option, value])
    assert code == 2 and match in err and len(err.strip().splitlines()) == 1
    assert not (files / "out.tif").exists()


@pytest.mark.parametrize("command", ["segment", "evaluate"])
def test_ranges_beyond_the_volume_are_clipped_with_a_warning(files, cli, command):
    code, out, err = cli([*_argv(command, files), "--z", "2:100", "--roi", ":,0:640"])
    assert code == 0, err
    warned = [ln for ln in err.splitlines() if "warning:" in ln]
    assert any("z range 2:100 reaches beyond the volume (z-size 8): clipped to 2:8" in w for w in warned)
    assert any("y range 0:640 reaches beyond the volume (y-size 16): clipped to 0:16" in w for w in warned)
