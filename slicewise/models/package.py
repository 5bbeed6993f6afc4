"""Read bioimage.io model packages written by :func:`slicewise.export.bioimageio` (the network is rebuilt from
them by :func:`slicewise.models.build.load_model`).

Needs neither ``bioimageio.spec`` nor ``bioimageio.core`` (so ``slicewise predict PKG.zip`` works
on the core install): the package's ``bioimageio.yaml`` is read with PyYAML and its
``config.slicewise`` block gives the ModelConfig; the ``pytorch_state_dict`` weights (keys of
:class:`~slicewise.export.architecture.SlicewiseNetwork`, i.e. ``net.`` + the model's keys) are
loaded into a network rebuilt with random initial weights (no downloads). A package is a
``.zip`` holding ``bioimageio.yaml`` (or the older ``rdf.yaml``), an unpacked package folder, or
that YAML file itself.

Trust (a package is untrusted input): the description is read with ``yaml.safe_load`` (a ``!!python/...`` tag
is refused in one line); with ``bioimageio.spec`` installed it must pass bioimage.io's own validation (format
only, no I/O); the fields slicewise reads (``weights.pytorch_state_dict.source`` / ``sha256``,
``config.slicewise``) are parsed into :class:`PackageDescription`, refused in one line naming the file and the
field; file names must stay inside the package; a zip member with a bad CRC is a damaged package; and the
sha256 of the weights file is checked against the description BEFORE the weights are unpickled
(``weights_only=True`` in any case).
"""

from __future__ import annotations

import hashlib
import io
import logging
import zipfile
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

import yaml
from pydantic import Field, StringConstraints, field_validator

from slicewise.config import ModelConfig, validate
from slicewise.data.stacking import BORDERS
from slicewise.errors import ConfigError, InputError
from slicewise.utils.inputs import check_input_path
from slicewise.utils.validation import MetadataModel, confined_path, parse_metadata

log = logging.getLogger(__name__)

RDF_NAMES = ("bioimageio.yaml", "rdf.yaml")
PREFIX = "net."
_FIX = "the package is corrupt or was altered: re-export it with slicewise export bioimageio"

Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{64}$")]


class WeightsEntry(MetadataModel):
    """``weights.pytorch_state_dict``: the weights file (relative to the package) and its sha256."""

    source: str = Field(min_length=1)
    sha256: Sha256 | None = None


class WeightsFormats(MetadataModel):
    pytorch_state_dict: WeightsEntry


class SlicewiseBlock(MetadataModel):
    """``config.slicewise`` as ``slicewise export bioimageio`` writes it (the model config is validated by
    :class:`slicewise.config.ModelConfig` apart)."""

    model_config_: dict[str, Any] = Field(alias="model_config")
    dz: Annotated[int, Field(strict=True, ge=1)] = 1
    border: str = "reflect"
    k: Annotated[int, Field(strict=True, ge=1)] | None = None

    @field_validator("border")
    @classmethod
    def _border(cls, v: str) -> str:
        if v not in BORDERS:
            raise ValueError(f"must be one of {', '.join(BORDERS)}")
        return v


@dataclass(frozen=True)
class PackageDefaults:
    """The settings a package carries besides its network: its ``name`` and ``format_version``, and the 2.5D
    stacking it was trained with (``dz``: z-step between context slices, ``border``: context beyond the volume
    ends), which prediction uses unless told otherwise. (Class names are part of the ModelConfig.)"""

    name: str | None
    format_version: str | None
    dz: int = 1
    border: str = "reflect"

    def as_dict(self) -> dict[str, Any]:
        """``{"name", "format_version", "dz", "border"}`` (``model.package``, ``slicewise model info --json``)."""
        return asdict(self)


class PackageConfig(MetadataModel):
    slicewise: SlicewiseBlock


class PackageDescription(MetadataModel):
    """The fields of a bioimage.io description that slicewise reads."""

    name: str | None = None
    format_version: str | None = None
    weights: WeightsFormats
    config: PackageConfig


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
    """Uniform read access to the files of a zipped or unpacked package; names confined to the package."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.zip: zipfile.ZipFile | None = None
        if path.is_file() and zipfile.is_zipfile(path):
            try:
                self.zip = zipfile.ZipFile(path)
            except (zipfile.BadZipFile, OSError, ValueError) as err:
                raise InputError(f"bioimage.io package {path} is not a readable zip ({err}): {_FIX}") from None
            rdf = _rdf_in_zip(self.zip)
            self.root = Path()
        else:
            self.root = path.parent if path.is_file() else path
            rdf = path.name if path.is_file() else next(n for n in RDF_NAMES if (path / n).is_file())
        assert rdf is not None
        self.rdf_name = rdf

    def read(self, name: str, field: str = "source") -> bytes:
        """The bytes of the package file ``name`` (as the description's ``field`` names it)."""
        rel = PurePosixPath(str(name))
        if rel.is_absolute() or ".." in rel.parts or not rel.parts or ":" in rel.parts[0]:
            raise InputError(f"{self.path}: field {field!r} = {name!r} is not a file inside the package: {_FIX}")
        try:
            if self.zip is not None:
                return self.zip.read(str(rel))
            where = check_input_path(confined_path(self.root, str(rel), self.path, field), "package file")
            return where.read_bytes()
        except (KeyError, FileNotFoundError, IsADirectoryError):
            raise InputError(
                f"bioimage.io package {self.path} lacks the file {name!r} it names: re-export it with slicewise "
                "export bioimageio"
            ) from None
        except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, ValueError) as err:  # bad CRC
            raise InputError(
                f"bioimage.io package {self.path}: {name} is damaged ({' '.join(str(err).split())[:120]}): {_FIX}"
            ) from None

    def close(self) -> None:
        if self.zip is not None:
            self.zip.close()


_SPEC_CHECKED: set[tuple[str, float]] = set()


def _spec_validation(p: Path) -> None:
    """bioimage.io's own validation of the description (format only: no I/O, no downloads) when ``bioimageio.spec``
    is installed (once per file and modification time); an invalid description is one line with its first error."""
    try:
        from bioimageio.spec import load_description
    except ImportError:  # the core install: slicewise's own model below still applies
        return
    key = (str(p.resolve()), p.stat().st_mtime)
    if key in _SPEC_CHECKED:
        return
    try:
        descr = load_description(str(p), perform_io_checks=False)
    except Exception as err:  # noqa: BLE001 - the spec library raises many types for a malformed package
        raise InputError(
            f"{p}: bioimage.io validation failed ({type(err).__name__}: {' '.join(str(err).split())[:160]}): {_FIX}"
        ) from None
    if type(descr).__name__ == "InvalidDescr":
        errors = [e for d in descr.validation_summary.details for e in d.errors]
        first = errors[0] if errors else None
        where = ".".join(str(x) for x in first.loc) if first is not None else "?"
        msg = " ".join(str(first.msg).split())[:160] if first is not None else "invalid"
        raise InputError(f"{p}: bioimage.io validation failed at field {where!r}: {msg}: {_FIX}")
    _SPEC_CHECKED.add(key)


def read_description(path: str | Path) -> dict[str, Any]:
    """The package's ``bioimageio.yaml`` as a dict (one-line InputError if it is not a package, if the YAML is
    malformed or carries a tag other than the standard ones, e.g. ``!!python/object``)."""
    p = check_input_path(path, "model file")
    if not is_package(p):
        raise InputError(
            f"{p} is not a bioimage.io model package (no bioimageio.yaml): give a .zip written by slicewise export "
            "bioimageio"
        )
    pkg = _Package(p)
    try:
        text = pkg.read(pkg.rdf_name, pkg.rdf_name)
    finally:
        pkg.close()
    try:
        rdf = yaml.safe_load(text)
    except yaml.YAMLError as err:
        first = " ".join(str(err).split())[:160]
        raise InputError(f"{p}: {pkg.rdf_name} is not plain YAML ({first}): {_FIX}") from None
    if not isinstance(rdf, dict):
        raise InputError(f"{p}: bioimageio.yaml is not a mapping: the package is corrupt")
    return rdf


def slicewise_block(rdf: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """``config.slicewise`` of a package description (InputError if it was not exported by slicewise)."""
    config = rdf.get("config")
    block = config.get("slicewise") if isinstance(config, dict) else None
    if not isinstance(block, dict) or "model_config" not in block:
        raise InputError(
            f"{path} is a bioimage.io package not exported by slicewise (no config.slicewise): "
            "only packages from `slicewise export bioimageio` can be loaded as slicewise models"
        )
    return block


def parse_description(rdf: dict[str, Any], path: str | Path) -> PackageDescription:
    """The validated fields slicewise reads from a slicewise-exported description (one line naming the field)."""
    slicewise_block(rdf, path)
    return parse_metadata(PackageDescription, rdf, f"{path} (bioimageio.yaml)", _FIX)


@dataclass(frozen=True)
class PackageContents:
    """What a slicewise-exported package holds: its ModelConfig as exported (``config``), the same with
    ``weights="random"`` to rebuild the network without downloads (``build_config``), the network's state dict
    (``state_dict``, the :data:`PREFIX` stripped) and :class:`PackageDefaults` (``defaults``)."""

    config: ModelConfig
    build_config: ModelConfig
    state_dict: dict[str, Any]
    defaults: PackageDefaults


def _weights_bytes(p: Path, description: PackageDescription) -> bytes:
    """The weights file's bytes, checked against the sha256 the description records (warned about when absent)."""
    entry = description.weights.pytorch_state_dict
    source = entry.source
    pkg = _Package(p)
    try:
        raw = pkg.read(source, "weights.pytorch_state_dict.source")
    finally:
        pkg.close()
    digest = hashlib.sha256(raw).hexdigest()
    if entry.sha256 is None:
        log.warning(
            "%s: the description gives no sha256 for %s: its integrity is unverified (sha256 %s)", p, source, digest
        )
    elif digest != entry.sha256.lower():
        raise InputError(
            f"{p}: weights file {source} has sha256 {digest[:12]}…, not the {entry.sha256[:12]}… its "
            f"description records: the weights were altered or damaged after export; re-export the package"
        )
    return raw


def read_package(path: str | Path) -> PackageContents:
    """Read and check a slicewise-exported package (description, config, sha256 of the weights, bioimage.io's own
    validation when installed) and unpickle its weights (``weights_only=True``); every failure is one
    :class:`InputError` line. Building the network is :func:`slicewise.models.build.load_model`'s part."""
    import torch

    p = check_input_path(path, "model file")
    rdf = read_description(p)
    description = parse_description(rdf, p)
    block = description.config.slicewise
    try:
        build_config = validate(ModelConfig, {**block.model_config_, "weights": "random"}, p.name)
    except ConfigError as err:
        raise InputError(
            f"{p} holds an invalid slicewise model config ({err}): it was exported by another slicewise version"
        ) from None
    raw = _weights_bytes(p, description)
    _spec_validation(p)  # bioimage.io's own checks of the whole description, before anything is unpickled
    try:
        state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001  (any unpickling failure means a corrupt file)
        raise InputError(
            f"{p}: weights file {description.weights.pytorch_state_dict.source} is not readable "
            f"({type(err).__name__}): the package is corrupt"
        ) from None
    return PackageContents(
        config=validate(ModelConfig, block.model_config_, p.name),
        build_config=build_config,
        state_dict={k[len(PREFIX) :]: v for k, v in state.items() if k.startswith(PREFIX)},
        defaults=PackageDefaults(
            name=description.name, format_version=description.format_version, dz=block.dz, border=block.border
        ),
    )
