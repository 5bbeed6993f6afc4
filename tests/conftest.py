"""Shared fixtures. Tests that need ../shared/data skip with a reason when it is absent."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from slicewise.errors import InputError

os.environ.setdefault("SLICEWISE_NO_PROGRESS", "1")
os.environ.setdefault("SLICEWISE_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SLICEWISE_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (ISBI 2012, MoNuSeg subset); skips the test when it is absent."""
    if not (SHARED_DATA / "isbi2012" / "train-volume.tif").is_file():
        pytest.skip(f"real data not available: {SHARED_DATA} is absent (set SLICEWISE_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def isbi_crop(shared_data: Path) -> tuple[np.ndarray, np.ndarray]:
    """ISBI 2012 raw and labels, slices 0-9, 128x128 crop at the centre (uint8)."""
    import tifffile

    raw = tifffile.imread(shared_data / "isbi2012" / "train-volume.tif")[:10, 192:320, 192:320]
    lab = tifffile.imread(shared_data / "isbi2012" / "train-labels.tif")[:10, 192:320, 192:320]
    return raw, lab


@pytest.fixture(scope="session")
def phantom():
    """A small seeded synthetic EM phantom (16x96x96)."""
    from slicewise.data.synthetic import make_phantom

    return make_phantom(shape=(16, 96, 96), seed=0)


@pytest.fixture
def cli(capsys):
    """Run the ``slicewise`` command line in this process: ``cli([arg, ...])`` → (exit code, stdout, stderr);
    arguments are converted with ``str`` (paths welcome)."""
    from slicewise.cli import main

    def run(argv):
        try:
            main([str(a) for a in argv])
            code = 0
        except SystemExit as ex:
            code = ex.code if isinstance(ex.code, int) else (0 if ex.code is None else 1)
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture(scope="session")
def load_script():
    """``load_script(path, name)``: import a script that is not part of the package (``benchmarks/*.py``)
    as module ``name``."""
    import importlib.util
    import sys

    def load(path: Path, name: str):
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return module

    return load


class SmallDisks:
    """Folders on their own small tmpfs (full disks on demand); see the ``small_disk`` fixture."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path, self.mounts = tmp_path, []

    def __call__(self, size: str = "1m") -> Path:
        import subprocess

        d = self.tmp_path / f"disk{len(self.mounts)}"
        d.mkdir()
        r = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(d)], capture_output=True, text=True
        )
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs for a full-disk case here ({(r.stderr or 'mount failed').strip()})")
        self.mounts.append(d)
        return d

    @staticmethod
    def fill(folder: Path, leave: int = 0) -> Path:
        """Take all but ``leave`` bytes of the filesystem holding ``folder`` with one filler file; returns it."""
        import shutil

        filler = folder / ".filler"
        free = shutil.disk_usage(folder).free - leave
        with open(filler, "ab") as fh:
            while free > 0:
                n = min(free, 1 << 20)
                try:
                    fh.write(b"\0" * n)
                    fh.flush()
                except OSError:
                    break
                free -= n
        return filler

    def unmount(self) -> None:
        import subprocess

        for d in self.mounts:
            subprocess.run(["umount", "-l", str(d)], capture_output=True)


@pytest.fixture
def small_disk(tmp_path):
    """``small_disk(size="1m")``: a fresh folder on its own tmpfs of ``size`` (a full disk on demand), unmounted
    after the test; the test is skipped, with the reason, where this machine may not mount one (not root, a
    container without CAP_SYS_ADMIN). ``small_disk.fill(folder, leave=0)`` takes all but ``leave`` bytes of it."""
    disks = SmallDisks(tmp_path)
    yield disks
    disks.unmount()


# --- a tiny stand-in for SegmentationModel (same attributes and forward contract), for fast CPU tests ---
class StubModel(nn.Module):
    """``forward(x) -> (B, out_channels, H, W)``; heads ``seg`` (2 classes) + ``distance`` (1 channel).

    kind="conv": a seeded 3×3 convolution (position-dependent output, for equality tests);
    kind="plus_one": seg logits constant (1, 0), distance = centre slice + 1 (the MONAI-style check).
    ``calls`` counts the tiles seen; ``fail_after`` raises once that many tiles were seen.
    """

    def __init__(
        self, in_slices: int = 3, colors: int = 1, kind: str = "conv", size_divisor: int = 8, extra: str = "distance"
    ) -> None:
        super().__init__()
        self.in_slices, self.in_channels = in_slices, in_slices * colors
        self.colors = colors
        self.out_channels = 3
        self.heads = {"seg": slice(0, 2), extra: slice(2, 3)}
        self.size_divisor = size_divisor
        self.kind = kind
        torch.manual_seed(0)
        self.conv = nn.Conv2d(self.in_channels, 3, 3, padding=1)
        self.calls = 0
        self.fail_after: int | None = None

    def check_input_size(self, h: int, w: int) -> None:
        if h % self.size_divisor or w % self.size_divisor:
            raise InputError(f"input {h}x{w} must be a multiple of {self.size_divisor}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[1] == self.in_channels and x.dtype == torch.float32
        self.calls += x.shape[0]
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("simulated crash")
        if self.kind == "plus_one":
            r = self.in_slices // 2
            centre = x[:, r * self.colors : r * self.colors + 1]
            seg = torch.cat([torch.ones_like(centre), torch.zeros_like(centre)], 1)
            return torch.cat([seg, centre + 1], 1)
        return self.conv(x)


@pytest.fixture(scope="session")
def stub() -> type[StubModel]:
    return StubModel


@pytest.fixture
def small_volume() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (7, 40, 52), dtype=np.uint8)


# --- a tiny training configuration (CPU, seconds), shared by the training, signal and full-disk tests ---
TINY_TRAIN: dict[str, Any] = {
    "seed": 0,
    "data": {
        "synthetic": {"shape": [10, 64, 64], "seed": 0},
        "patch_size": 64,
        "batch_size": 2,
        "num_workers": 0,
        "val_patches": 2,
    },
    "model": {
        "encoder": "tf_efficientnet_lite0",
        "weights": "random",
        "in_slices": 3,
        "decoder_channels": [16, 16, 8, 8, 8],
    },
    "optim": {"lr": 1e-3, "warmup_steps": 1},
    "trainer": {"max_steps": 4, "val_every": 2, "log_every": 1},
}


@pytest.fixture(scope="session")
def make_tiny_config() -> Callable[[], dict[str, Any]]:
    """Factory of fresh copies of the tiny config: phantom 10×64×64, 64² patches, batch 2, k=3,
    random Lite0 with a slim decoder, 4 steps with validation every 2."""
    return lambda: copy.deepcopy(TINY_TRAIN)


@pytest.fixture
def tiny_config(make_tiny_config) -> dict[str, Any]:
    """A fresh copy of the tiny config."""
    return make_tiny_config()
