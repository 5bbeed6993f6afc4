"""The README's CPU-only install line (checked by reading it: the PyTorch CPU index is not reachable from CI)
and ``slicewise.utils.install``, which tells a CPU-only environment from a CUDA one."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from slicewise.utils.install import CPU_INDEX, cpu_install_problems, install_report, torchvision_for

ROOT = Path(__file__).resolve().parents[2]


def _cpu_line() -> list[str]:
    """The README's one ``pip install`` command that names the CPU index, as argv."""
    text = (ROOT / "README.md").read_text()
    install = text[text.index("## Install") : text.index("## Test")]
    lines = [
        ln.strip()
        for block in re.findall(r"```bash\n(.*?)```", install, re.S)
        for ln in block.splitlines()
        if "download.pytorch.org" in ln
    ]
    assert len(lines) == 1, f"expected one CPU install line in the README's Install section, found {lines}"
    return shlex.split(lines[0])


def test_readme_cpu_line_pins_a_matching_torch_torchvision_pair_from_the_cpu_index() -> None:
    argv = _cpu_line()
    assert argv[:4] == ["python", "-m", "pip", "install"]
    # one command: the package with the same extras as the main install line, and both CPU builds pinned
    assert "-e" in argv and argv[argv.index("-e") + 1] == ".[test,napari,bioimageio]"
    pins = {Requirement(a).name: Requirement(a) for a in argv[4:] if a.startswith(("torch==", "torchvision=="))}
    assert set(pins) == {"torch", "torchvision"}, "both torch and torchvision must be pinned (else pip may swap one)"
    versions = {name: Version(str(next(iter(req.specifier))).removeprefix("==")) for name, req in pins.items()}
    assert all(v.local == "cpu" for v in versions.values()), versions  # builds only the CPU index has
    assert f"{versions['torchvision'].major}.{versions['torchvision'].minor}" == torchvision_for(
        versions["torch"].public
    )
    # the index: the CPU one, given once, as an extra index (PyPI stays the index of everything else)
    indexes = [argv[i + 1] for i, a in enumerate(argv) if a in ("--extra-index-url", "--index-url")]
    assert indexes == [CPU_INDEX] and "--extra-index-url" in argv
    # inside the ranges pyproject.toml allows (else pip would have to choose another torch)
    deps = {
        Requirement(d).name: Requirement(d)
        for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    }
    for name, v in versions.items():
        assert deps[name].specifier.contains(v, prereleases=False), (
            f"{name} {v} is outside pyproject's {deps[name].specifier}"
        )


def test_torchvision_for_follows_the_release_pairs() -> None:
    assert torchvision_for("2.0.1") == "0.15" and torchvision_for("2.14.1") == "0.29"
    with pytest.raises(ValueError):
        torchvision_for("1.13.1")
    report = install_report()  # the pair installed here is a real release pair
    if report["torch"] and report["torchvision"]:
        assert report["torchvision"].startswith(torchvision_for(report["torch"]) + ".")


def test_install_report_agrees_with_torch_itself() -> None:
    import torch

    report = install_report()
    assert report["torch"] == torch.__version__.split("+")[0] or report["torch"] == torch.__version__
    assert report["torch_cuda_build"] == (torch.version.cuda is not None)
    problems = cpu_install_problems(report)
    assert bool(problems) == bool(report["torch_cuda_build"] or report["nvidia"] or report["triton"])


def test_cpu_install_problems_name_what_is_wrong() -> None:
    cpu = {"torch": "2.14.1+cpu", "torchvision": "0.29.1+cpu", "torch_cuda_build": False, "nvidia": [], "triton": []}
    assert cpu_install_problems(cpu) == []
    swapped = {
        **cpu,
        "torch": "2.14.1",
        "torch_cuda_build": True,
        "nvidia": ["nvidia-cublas"],
        "triton": ["triton"],
        "torchvision": "0.30.0",
    }
    lines = cpu_install_problems(swapped)
    assert len(lines) == 4 and "CUDA build" in lines[0] and "nvidia-cublas" in lines[1] and "triton" in lines[2]
    assert "0.29" in lines[3]


def test_this_environment_is_cpu_only() -> None:
    """Run by CI after the README's CPU line; skipped (with the reason) in an environment with a CUDA build."""
    report = install_report()
    if report["torch_cuda_build"]:
        pytest.skip(
            f"torch {report['torch']} is a CUDA build here (CI installs from PyPI; the CPU index is not reachable "
            f"from it): the CPU-only check applies to an environment installed with the README's CPU line"
        )
    assert cpu_install_problems(report) == []
    out = subprocess.run(
        [sys.executable, "-m", "slicewise.utils.install"], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0 and "CPU-only install" in out.stdout


def test_install_module_exit_status() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "slicewise.utils.install"], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == (1 if cpu_install_problems() else 0)
    assert out.stdout.startswith("torch ")
