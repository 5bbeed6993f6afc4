"""Untrusted metadata: parsed into validated models, paths confined to their container.

Special files (FIFO, socket, device, symlink loop) are refused before anything opens them by
:func:`slicewise.utils.inputs.check_input_path`, the one gate every reader goes through.

- :func:`parse_metadata` validates a mapping read from a file slicewise did not just write (OME-NGFF
  attributes, a bioimage.io description, a run folder's ``config.yaml``, a study cell's results, a registry
  entry, a checkpoint's hyper-parameters) into a pydantic model; a problem is one :class:`InputError` line
  naming the file and the field (``multiscales.0.datasets``) and the fix.
- :func:`confined_path` resolves a relative path stored in metadata inside its container (a store, a
  package, a run folder) and refuses absolute paths and paths that leave it (``../x``, a symlink out).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from slicewise.errors import InputError

__all__ = ["MetadataModel", "confined_path", "parse_metadata", "validation_message"]

M = TypeVar("M", bound=BaseModel)


class MetadataModel(BaseModel):
    """Base of models of foreign metadata: unknown keys are kept (other tools add their own), values checked."""

    model_config = ConfigDict(extra="allow", frozen=True, protected_namespaces=())


def validation_message(err: ValidationError) -> tuple[str, str]:
    """(field, problem) of the first error of a pydantic report: ``("multiscales.0.datasets", "bad value ...")``."""
    e = err.errors()[0]
    field = ".".join(str(x) for x in e["loc"]) or "<top level>"
    msg = " ".join(str(e["msg"]).removeprefix("Value error, ").split())
    if e["type"] == "missing":
        return field, "is missing"
    if isinstance(e.get("input"), (dict, list)) and e["type"] == "value_error":  # a check across keys: no dump
        return field, f"is invalid: {msg}"
    given = repr(e.get("input"))
    given = given if len(given) <= 60 else given[:57] + "..."
    return field, f"has a bad value ({given}): {msg}"


def parse_metadata(model: type[M], data: Any, source: str | os.PathLike[str], fix: str, *, prefix: str = "") -> M:
    """``data`` validated into ``model``; a one-line :class:`InputError` ``<source>: field '<f>' <problem>: <fix>``
    on the first problem. ``prefix`` is prepended to field names (e.g. ``"config.slicewise"``)."""
    if not isinstance(data, dict):
        where = f"{source}: {prefix or 'the top level'}"
        raise InputError(f"{where} is {type(data).__name__}, not a mapping of keys to values: {fix}")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        field, problem = validation_message(err)
        field = f"{prefix}.{field}" if prefix and field != "<top level>" else prefix or field
        raise InputError(f"{source}: field {field!r} {problem}: {fix}") from None


def confined_path(root: str | os.PathLike[str], rel: str, source: str | os.PathLike[str], field: str) -> Path:
    """``root / rel`` if it stays inside ``root`` (after resolving ``..`` and symlinks); a one-line
    :class:`InputError` naming ``source`` and ``field`` for an absolute path, a URL-like path or one that leaves
    ``root`` (metadata may only name files of its own container)."""
    text = str(rel)
    if not text or os.path.isabs(text) or text.startswith(("/", "\\")) or "\\" in text or ":" in text.split("/")[0]:
        raise InputError(
            f"{source}: field {field!r} = {text!r} is not a relative path inside {root}: "
            f"metadata may only name files of its own container"
        )
    base = Path(root).resolve()
    target = (base / text).resolve()
    if target != base and base not in target.parents:
        raise InputError(
            f"{source}: field {field!r} = {text!r} leaves {root}: metadata may only name files of its own container"
        )
    return Path(root) / text
