"""The plugin's import guard (``slicewise/napari/triton_guard.py``): importing any plugin module installs it;
while a libLLVM is mapped, ``import triton`` is refused as "not installed" (torch then runs eager), otherwise
triton loads as usual. Each case runs in a fresh process (the guard acts on a process's first import)."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("triton", reason="triton is not installed here: nothing to guard")


def _run(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.split()


def test_triton_is_refused_while_an_llvm_gl_driver_is_mapped() -> None:
    code = (
        "import importlib.util, sys\n"
        "import slicewise.napari.reader  # any plugin module: npe2 imports it through slicewise.napari\n"
        "from slicewise.napari import triton_guard\n"
        "triton_guard.llvm_gl_loaded = lambda: True  # as after napari created a Mesa GL context\n"
        "try:\n    import triton\n    print('loaded')\nexcept ImportError:\n    print('refused')\n"
        "print(importlib.util.find_spec('triton') is None)\n"
        "import torchvision  # torch._dynamo probes for triton: the path that crashed napari\n"
        "from torch.utils._triton import has_triton_package\n"
        "print(has_triton_package(), 'torchvision' in sys.modules)\n"
    )
    assert _run(code) == ["refused", "True", "False", "True"]


def test_triton_loads_when_no_llvm_gl_driver_is_mapped() -> None:
    code = (
        "import sys\nimport slicewise.napari.sample_data\n"
        "from slicewise.napari import triton_guard\n"
        "triton_guard.llvm_gl_loaded = lambda: False\n"
        "print(sum(isinstance(f, triton_guard.TritonGuard) for f in sys.meta_path), "
        "isinstance(sys.meta_path[0], triton_guard.TritonGuard))\n"
        "triton_guard.install_triton_guard()  # idempotent\n"
        "print(sum(isinstance(f, triton_guard.TritonGuard) for f in sys.meta_path))\n"
        "import triton\nprint(type(triton).__name__)\n"
    )
    assert _run(code) == ["1", "True", "1", "module"]
