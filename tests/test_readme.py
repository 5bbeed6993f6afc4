"""The README's command blocks run as written, top to bottom.

Every ``slicewise ...`` line of every ```bash block after "Install"/"Test" is executed in order, in one
scratch folder, through the real entry point, with every flag the README gives. Only the size of the
work is changed, by :data:`SMALL` (appended options that make it small: fewer steps, smaller tiles and
patches, one study cell), and the data: ``../shared/data/isbi2012`` is replaced by a 30×128×128 phantom
in the ISBI 2012 layout and label convention (0 = membrane, 255 = interior), so the test needs neither
the real data nor a network. The install and test blocks are what ``.ci/run`` executes (checked in
tests/export/test_package.py) and are not run here.
"""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"

# appended to a command (argparse-style: a later option wins) to make its work small
SMALL: dict[str, list[str]] = {
    "demo": ["--steps", "2", "--patch", "64"],
    "train": [
        "--steps",
        "2",
        "optim.warmup_steps=0",
        "data.patch_size=[64,64]",
        "data.batch_size=2",
        "data.val_patches=1",
        "model.decoder_channels=[16,16,8,8,8]",
        "trainer.val_every=2",
    ],
    "predict": ["--tile", "64", "--block", "8,128,128"],
    "audit attribution": ["--tiles", "2", "--tile", "64"],
    "audit shift": ["--tiles", "2", "--tile", "64"],
    "study": ["--cells", "0"],
    "pretrain": [
        "--steps",
        "2",
        "data.patch_size=32",
        "data.batch_size=4",
        "method.memory_bank=64",
        "optim.warmup_steps=0",
        "trainer.val_every=2",
    ],
}


def command_lines(text: str) -> list[str]:
    """The ``slicewise`` command lines of the README's ```bash blocks, in order."""
    lines: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL):
        for line in block.splitlines():
            line = line.strip()
            if line.startswith("slicewise "):
                lines.append(line)
    return lines


def _phantom_isbi(folder: Path) -> None:
    import tifffile

    from slicewise.data.synthetic import make_phantom

    folder.mkdir(parents=True)
    ph = make_phantom(shape=(30, 128, 128), seed=0)
    tifffile.imwrite(folder / "train-volume.tif", ph.raw)
    tifffile.imwrite(folder / "train-labels.tif", np.where(ph.semantic == 1, 0, 255).astype(np.uint8))
    tifffile.imwrite(folder / "test-volume.tif", ph.raw)


def _small(argv: list[str]) -> list[str]:
    key = " ".join(argv[:2]) if argv[0] in ("audit", "study", "data", "model", "export") else argv[0]
    if argv[:2] == ["study", "init"] or (argv[0] == "study" and "--smoke" not in argv):
        return argv
    return [*argv, *SMALL.get(key, [])]


def test_readme_has_the_chain() -> None:
    text = README.read_text()
    cmds = [" ".join(shlex.split(c)[1:3]) for c in command_lines(text)]
    for expected in (
        "demo",
        "train examples/train_isbi.yaml",
        "predict runs/isbi/best.pt",
        "segment runs/isbi/pred.zarr",
        "evaluate runs/isbi/cells.tif",
        "audit weights",
        "audit attribution",
        "audit shift",
        "study init",
        "export bioimageio",
        "pretrain",
    ):
        assert any(c.startswith(expected) for c in cmds), expected
    assert any(c.startswith("slicewise study init pretraining") for c in command_lines(text))
    assert "--use boundary [" not in text  # the example configs have no boundary head
    assert "an idle 2-core machine" in text


def test_readme_command_blocks_run_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from slicewise.cli import main

    work = tmp_path / "repo"
    (work / "examples").mkdir(parents=True)
    for f in (REPO / "examples").glob("*.yaml"):
        shutil.copy(f, work / "examples" / f.name)
    shared = tmp_path / "shared" / "data"
    _phantom_isbi(shared / "isbi2012")
    monkeypatch.chdir(work)
    lines = command_lines(README.read_text())
    assert len(lines) >= 12
    for line in lines:
        line = line.replace("../shared/data", str(shared))
        redirect = None
        if " > " in line:
            line, redirect = (part.strip() for part in line.split(" > ", 1))
        argv = _small(shlex.split(line)[1:])
        try:
            main(argv)
            code = 0
        except SystemExit as ex:
            code = ex.code
        cap = capsys.readouterr()
        assert code == 0, f"README command failed: {line}\n{cap.err[-2000:]}"
        assert "Traceback" not in cap.err
        if redirect:
            Path(redirect).write_text(cap.out)
    assert (work / "slicewise-demo" / "results.json").is_file()
    assert (work / "slicewise-demo-train-volume" / "results.json").is_file()
    assert (work / "runs" / "isbi" / "scores.json").is_file() and (work / "runs" / "isbi" / "membrane.zip").is_file()
    assert (work / "runs" / "my_bias-smoke" / "cells").is_dir()
    assert (work / "runs" / "pretrain-isbi" / "encoder.safetensors").is_file()
    assert str(work / "runs" / "pretrain-isbi" / "encoder.safetensors") in (work / "my_pretraining.yaml").read_text()
    assert (work / "runs" / "my_pretraining-smoke" / "results.csv").is_file()
