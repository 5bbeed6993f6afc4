"""Read bioimage.io model packages written by :func:`slicewise.export.bioimageio`.

Needs neither ``bioimageio.spec`` nor ``bioimageio.core`` (so ``slicewise predict PKG.zip`` works
on the core install): the package's ``bioimageio.yaml`` is read with PyYAML and its
``config.slicewise`` block gives the ModelConfig; the ``pytorch_state_dict`` weights (keys of
:class:`~slicewise.export.architecture.SlicewiseNetwork`, i.e. ``net.`` + the model's keys) are
loaded into a network rebuilt with random initial weights (no downloads). A package is a
``.zip`` holding ``bioimageio.yaml`` (or the older ``rdf.yaml``), an unpacked package folder, or
that YAML file itself.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import yaml

from slicewise.errors import InputError

RDF_NAMES = ("bioimageio.yaml", "rdf.yaml")
PREFIX = "net."


def _rdf_in_zip(zf: zipfile.ZipFile) -> str | None:
    names = set(zf.namelist())
    return next((n for n in RDF_NAMES if n in names), None)


def is_package(path: str | Path) -> bool:
    """Whether ``path`` is a bioimage.io package (zip, folder or its YAML file); never raises."""
    p = Path(path)
    try:
        if p.is_dir():
            return any((p / n).is_file() for n in RDF_NAMES)
        if p.is_file() and p.name in RDF_NAMES:
            return True
        if p.is_file() and zipfile.is_zipfile(p):
            with zipfile.ZipFile(p) as zf:
                return _rdf_in_zip(zf) is not None
    except OSError:
        return False
    return False


class _Package:
    """Uniform read access to the files of a zipped or unpacked package."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.zip: zipfile.ZipFile | None = None
        if path.is_file() and zipfile.is_zipfile(path):
            self.zip = zipfile.ZipFile(path)
            rdf = _rdf_in_zip(self.zip)
            self.root = Path()
        else:
            self.root = path.parent if path.is_file() else path
            rdf = path.name if path.is_file() else next(n for n in RDF_NAMES if (path / n).is_file())
        assert rdf is not None
        self.rdf_name = rdf

    def read(self, name: str) -> bytes:
        try:
            if self.zip is not None:
                return self.zip.read(name)
            return (self.root / name).read_bytes()
        except (KeyError, OSError):
            raise InputError(f"bioimage.io package {self.path} lacks the file {name!r} it names: re-export it with slicewise export bioimageio") from None

    def close(self) -> None:
        if self.zip is not None:
            self.zip.close()


def read_description(path: str | Path) -> dict[str, Any]:
    """The package's ``bioimageio.yaml`` as a dict (one-line InputError if it is not a package)."""
    p = Path(path)
    if not is_package(p):
        raise InputError(f"{p} is not a bioimage.io model package (no bioimageio.yaml): give a .zip written by slicewise export bioimageio")
    pkg = _Package(p)
    try:
        rdf = yaml.safe_load(pkg.read(pkg.rdf_name))
    finally:
        pkg.close()
    if not isinstance(rdf, dict):
        raise InputError(f"{p}: bioimageio.yaml is not a mapping: the package is corrupt")
    return rdf


def slicewise_block(rdf: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """``config.slicewise`` of a package description (InputError if it was not exported by slicewise)."""
    block = (rdf.get("config") or {}).get("slicewise")
    if not isinstance(block, dict) or "model_config" not in block:
        raise InputError(f"{path} is a bioimage.io package not exported by slicewise (no config.slicewise): "
                         "only packages from `slicewise export bioimageio` can be loaded as slicewise models")
    return block


def load_package(path: str | Path, map_location: Any = "cpu") -> Any:
    """Rebuild the :class:`~slicewise.models.build.SegmentationModel` of a slicewise-exported package.

    The returned model's ``config`` is the exported ModelConfig; ``model.package`` holds the
    package's name and its 2.5D settings (``dz``, ``border``) for callers that want them.
    """
    import torch

    from slicewise.config import ModelConfig, validate
    from slicewise.errors import ConfigError
    from slicewise.models.build import build_model

    p = Path(path)
    rdf = read_description(p)
    block = slicewise_block(rdf, p)
    try:
        cfg = validate(ModelConfig, {**block["model_config"], "weights": "random"}, p.name)
    except ConfigError as err:
        raise InputError(f"{p} holds an invalid slicewise model config ({err}): it was exported by another slicewise version") from None
    source = ((rdf.get("weights") or {}).get("pytorch_state_dict") or {}).get("source")
    if not source:
        raise InputError(f"{p} has no pytorch_state_dict weights: re-export it with slicewise export bioimageio")
    pkg = _Package(p)
    try:
        raw = pkg.read(str(source))
    finally:
        pkg.close()
    try:
        state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001  (any unpickling failure means a corrupt file)
        raise InputError(f"{p}: weights file {source} is not readable ({type(err).__name__}): the package is corrupt") from None
    model = build_model(cfg)
    inner = {k[len(PREFIX):]: v for k, v in state.items() if k.startswith(PREFIX)}
    try:
        model.load_state_dict(inner)
    except RuntimeError as err:
        raise InputError(f"{p}: weights do not fit the model config ({str(err).splitlines()[0][:200]}): the package is corrupt") from None
    model.config = validate(ModelConfig, block["model_config"], p.name)
    model.package = {"name": rdf.get("name"), "format_version": rdf.get("format_version"),
                     "dz": int(block.get("dz", 1)), "border": block.get("border", "reflect")}
    return model.to(map_location)
