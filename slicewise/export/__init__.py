"""Bridges to the bioimage.io model zoo (export and import of model packages).

``slicewise.export.bioimageio(model, "out.zip", ...)`` writes a package (needs the
``bioimageio`` extra); :func:`load_package` / ``slicewise.load_model("pkg.zip")`` read one
back (core install only).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slicewise.export.package import is_package, load_package, read_description

__all__ = ["bioimageio", "is_package", "load_package", "read_description"]


def bioimageio(model: Any, output: str | Path, **options: Any) -> Path:
    """Export ``model`` (SegmentationModel or model file) as a bioimage.io package; see
    :func:`slicewise.export.bmz.export_bioimageio` for the options."""
    from slicewise.export.bmz import export_bioimageio

    return export_bioimageio(model, output, **options)
