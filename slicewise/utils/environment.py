"""The computing environment a result came from: versions, threads, device, machine.

Every results file and report records :func:`environment_info` so that a number can be traced to the
build that produced it (torch builds differ in kernels: CPU vs CUDA wheels, MKL vs OpenBLAS, thread
counts change reduction order). :func:`environment_text` is its one-line human form.
"""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from typing import Any

from slicewise import __version__

__all__ = ["PACKAGES", "environment_info", "environment_text"]

# distributions whose versions decide numbers (import name → distribution name)
PACKAGES = {
    "slicewise": "slicewise",
    "torch": "torch",
    "torchvision": "torchvision",
    "timm": "timm",
    "numpy": "numpy",
    "scipy": "scipy",
    "pytorch_lightning": "pytorch-lightning",
    "lightly": "lightly",
}


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment_info(device: Any = None, seed: int | None = None) -> dict[str, Any]:
    """Versions, torch build, threads, device and machine as a JSON-ready dict.

    ``device``: the torch device (or its name) the computation ran on; default: CPU. ``seed``: the seed
    of the run, where there is one. Thread counts are read from torch at call time, so call this after
    :func:`slicewise.utils.device.configure_threads`.
    """
    import torch  # heavy: imported only when a result is being recorded

    versions = {name: _version(dist) for name, dist in PACKAGES.items()}
    if versions["slicewise"] is None:
        versions["slicewise"] = __version__
    dev = torch.device(device) if device is not None else torch.device("cpu")
    device_name = torch.cuda.get_device_name(dev) if dev.type == "cuda" and torch.cuda.is_available() else _cpu_model()
    return {
        "versions": versions,
        "python": platform.python_version(),
        "torch_build": {
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.cuda.is_available() else None,
            "blas": "mkl" if torch.backends.mkl.is_available() else "other",
            # the SIMD kernels torch uses on this CPU (AVX512, AVX2, ...): they change float results
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        },
        "threads": {
            "torch": torch.get_num_threads(),
            "torch_interop": torch.get_num_interop_threads(),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        },
        "device": {"type": dev.type, "name": device_name},
        "machine": {"platform": sys.platform, "arch": platform.machine(), "cores": os.cpu_count()},
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "seed": seed,
    }


def environment_text(info: dict[str, Any]) -> str:
    """One line for a report header: ``slicewise 0.1.0 · torch 2.14.1 (CUDA 13.0 build) · … · 2 threads on <cpu>``."""
    v = info.get("versions", {})
    build = info.get("torch_build", {})
    torch_build = f"CUDA {build['cuda']} build" if build.get("cuda") else "CPU build"
    parts = [
        f"slicewise {v.get('slicewise')}",
        f"torch {v.get('torch')} ({torch_build})",
        f"timm {v.get('timm')}",
        f"numpy {v.get('numpy')}",
        f"Python {info.get('python')}",
    ]
    dev = info.get("device", {})
    threads = info.get("threads", {}).get("torch")
    where = f"{dev.get('type', 'cpu')}: {dev.get('name', '?')}"
    simd = f" ({build['cpu_capability']})" if build.get("cpu_capability") else ""
    plural = "" if threads == 1 else "s"
    parts.append(f"{threads} torch thread{plural} on {where}{simd}" if dev.get("type", "cpu") == "cpu" else where)
    if info.get("seed") is not None:
        parts.append(f"seed {info['seed']}")
    return " · ".join(parts)
