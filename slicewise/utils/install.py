"""Is this a CPU-only install? (README, "Install": the CPU line.)

Read from the installed distributions' metadata, without importing torch: torch's version label
(``2.14.1+cpu`` from the PyTorch CPU index; ``+cu130`` or no label with NVIDIA requirements for a CUDA
build), the ``nvidia-*`` packages and triton (both come only with CUDA builds).

    python -m slicewise.utils.install     # one line per finding; exit 0 for a CPU-only install, else 1
"""

from __future__ import annotations

import re
import sys
from importlib.metadata import PackageNotFoundError, distribution, distributions
from typing import Any

__all__ = ["CPU_INDEX", "cpu_install_problems", "install_report", "torchvision_for"]

CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def torchvision_for(torch_version: str) -> str:
    """The torchvision release series (``0.29``) built for a torch version (``2.14.1`` → ``0.29``): torch 2.N
    pairs with torchvision 0.(N+15) (2.0 ↔ 0.15, …, 2.14 ↔ 0.29)."""
    m = re.match(r"2\.(\d+)\.", torch_version)
    if m is None:
        raise ValueError(f"not a torch 2.x version: {torch_version}")
    return f"0.{int(m.group(1)) + 15}"


def install_report() -> dict[str, Any]:
    """torch / torchvision versions, whether torch is a CUDA build, and the ``nvidia-*`` and triton
    distributions installed (names), from package metadata only."""

    def version(name: str) -> str | None:
        try:
            return distribution(name).version
        except PackageNotFoundError:
            return None

    torch_version = version("torch")
    requires = [] if torch_version is None else (distribution("torch").requires or [])
    label = (torch_version or "").partition("+")[2]
    cuda = label.startswith("cu") or label.startswith("rocm") or any(r.lower().startswith("nvidia-") for r in requires)
    names = sorted({(d.metadata["Name"] or "").lower() for d in distributions()})
    return {
        "torch": torch_version,
        "torchvision": version("torchvision"),
        "torch_cuda_build": cuda if torch_version else None,
        "nvidia": [n for n in names if n.startswith("nvidia-")],
        "triton": [n for n in names if n.startswith("triton")],
    }


def cpu_install_problems(report: dict[str, Any] | None = None) -> list[str]:
    """What keeps this environment from being CPU-only (empty: it is), one line each."""
    r = install_report() if report is None else report
    problems = []
    if r["torch"] is None:
        return ["torch is not installed"]
    if r["torch_cuda_build"]:
        problems.append(
            f"torch {r['torch']} is a CUDA build: install the CPU build with the README's CPU line ({CPU_INDEX})"
        )
    if r["nvidia"]:
        problems.append(f"{len(r['nvidia'])} NVIDIA packages are installed ({', '.join(r['nvidia'][:3])}, ...)")
    if r["triton"]:
        problems.append(f"{', '.join(r['triton'])} is installed (it comes with CUDA builds of torch)")
    if r["torchvision"] is not None and not r["torchvision"].startswith(torchvision_for(r["torch"]) + "."):
        problems.append(
            f"torchvision {r['torchvision']} does not belong to torch {r['torch']} "
            f"(expected {torchvision_for(r['torch'])}.x)"
        )
    return problems


def main() -> int:
    r = install_report()
    print(f"torch {r['torch']} ({'CUDA' if r['torch_cuda_build'] else 'CPU'} build), torchvision {r['torchvision']}")
    problems = cpu_install_problems(r)
    for line in problems:
        print(line)
    if not problems:
        print("CPU-only install: no NVIDIA packages, no triton")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
