"""``slicewise demo``: the main job end to end, on an embedded default, with no network.

:func:`run_demo` (in :mod:`slicewise.demo.run`, which loads torch, so it is imported on first use) runs it;
:mod:`slicewise.demo.options` holds what is settled without torch: defaults, the checks of the options and the
printed table (:func:`format_demo`).
"""

from __future__ import annotations

import importlib
from typing import Any

from slicewise.demo.options import CLASS_NAMES, DEFAULT_STRATEGIES, check_demo_options, format_demo

__all__ = ["CLASS_NAMES", "DEFAULT_STRATEGIES", "check_demo_options", "format_demo", "run_demo"]


def __getattr__(name: str) -> Any:
    if name == "run_demo":
        return importlib.import_module("slicewise.demo.run").run_demo
    raise AttributeError(f"module 'slicewise.demo' has no attribute {name!r}")
