"""Keep triton from loading next to an LLVM-based OpenGL driver (the napari plugin's import guard).

napari's OpenGL context on Mesa (llvmpipe, radeonsi, ...) maps ``libLLVM`` into the process; triton's
own LLVM then crashes the process (segmentation fault) when torch first probes for it (timm →
torchvision → ``torch._dynamo`` → ``import triton``). slicewise runs eager PyTorch in napari (triton
only serves ``torch.compile``), so the plugin answers ``import triton`` with "not installed" whenever a
``libLLVM`` is mapped *at the moment of that import*.

The check is an import hook (:class:`TritonGuard` on ``sys.meta_path``) installed by
``slicewise/napari/__init__.py``: every plugin module (reader, widgets, sample data) is imported
through that package, so the guard is in place before any plugin code can import torch, whatever
the order in which napari loads the contributions. Outside napari (no plugin import) nothing changes.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["TritonGuard", "install_triton_guard", "llvm_gl_loaded"]

log = logging.getLogger(__name__)
BLOCKED = "triton"


def llvm_gl_loaded() -> bool:
    """True when a ``libLLVM`` shared library is mapped into this process (Linux ``/proc/self/maps``)."""
    try:
        return "libLLVM" in Path("/proc/self/maps").read_text()
    except OSError:
        return False


class _Refuse(importlib.abc.Loader):
    """Loader of a refused import: raises ``ImportError``, which torch reads as "triton is not installed"."""

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        raise ModuleNotFoundError(
            f"{spec.name} is disabled in this napari session: an LLVM-based OpenGL driver is loaded "
            "and triton's LLVM would crash the process (slicewise runs eager PyTorch)",
            name=spec.name,
        )

    def exec_module(self, module: ModuleType) -> None:  # pragma: no cover - create_module always raises
        raise ModuleNotFoundError(module.__name__)


class TritonGuard(importlib.abc.MetaPathFinder):
    """``sys.meta_path`` finder: refuses ``triton`` (and its submodules) while a ``libLLVM`` is mapped.

    Once refused, ``sys.modules["triton"]`` is ``None`` for the rest of the session, so every later
    ``import triton`` and ``importlib.util.find_spec("triton")`` agrees that triton is unavailable.
    """

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != BLOCKED and not fullname.startswith(BLOCKED + "."):
            return None
        if BLOCKED in sys.modules and sys.modules[BLOCKED] is not None:
            return None  # triton was loaded before the GL driver: nothing left to prevent
        if not llvm_gl_loaded():
            return None
        if sys.modules.get(BLOCKED, False) is not None:
            log.warning(
                "an LLVM-based OpenGL driver is loaded: triton is disabled in this napari session "
                "(slicewise runs eager PyTorch)"
            )
            sys.modules[BLOCKED] = None  # type: ignore[assignment]
        return importlib.machinery.ModuleSpec(fullname, _Refuse())


def install_triton_guard() -> TritonGuard:
    """Put the one :class:`TritonGuard` first on ``sys.meta_path`` (idempotent); return it."""
    for finder in sys.meta_path:
        if isinstance(finder, TritonGuard):
            return finder
    guard = TritonGuard()
    sys.meta_path.insert(0, guard)
    return guard
