"""Bridges to the bioimage.io model zoo (export and import of model packages).

``slicewise.export.bioimageio(model, "out.zip", ...)`` writes a package (needs the ``bioimageio`` extra;
:func:`slicewise.export.bmz.export_bioimageio` lists the options); :func:`load_package` /
``slicewise.load_model("pkg.zip")`` read one back (core install only: :mod:`slicewise.models.package` reads a
package, :mod:`slicewise.models.build` builds its network). Names load on first use, so importing the package
imports neither torch nor ``bioimageio.spec``.
"""

from __future__ import annotations

import importlib
from typing import Any

_API = {
    "bioimageio": ("slicewise.export.bmz", "export_bioimageio"),
    "is_package": ("slicewise.models.package", "is_package"),
    "read_description": ("slicewise.models.package", "read_description"),
    "load_package": ("slicewise.models.build", "load_package"),
}

__all__ = ["bioimageio", "is_package", "load_package", "read_description"]


def __getattr__(name: str) -> Any:
    if name in _API:
        module, attr = _API[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
