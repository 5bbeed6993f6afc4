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

import difflib
import os
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from slicewise.errors import InputError

__all__ = [
    "MetadataModel",
    "SettingsModel",
    "check_choice",
    "confined_path",
    "parse_metadata",
    "validation_line",
    "validation_message",
]

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


def _allowed(model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """Describe what the field at ``loc`` accepts (keys of the model, or literal values)."""
    fields = model.model_fields
    sub: type[BaseModel] | None = model
    for part in loc[:-1]:
        if sub is None or not isinstance(part, str) or part not in sub.model_fields:
            return ""
        ann = sub.model_fields[part].annotation
        sub = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    if sub is None:
        return ""
    fields = sub.model_fields
    name = loc[-1]
    if name not in fields:
        close = difflib.get_close_matches(str(name), list(fields), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"{hint}; allowed keys: {', '.join(fields)}"
    ann = fields[name].annotation
    lits = [a for a in typing.get_args(ann)] if typing.get_origin(ann) is Literal else []
    if not lits:
        for arg in typing.get_args(ann):
            if typing.get_origin(arg) is Literal:
                lits = list(typing.get_args(arg))
    return f"; allowed values: {', '.join(map(str, lits))}" if lits else ""


def validation_line(model: type[BaseModel], err: ValidationError, source: str = "config") -> str:
    """THE one-line message of a settings model's first problem: ``<source>: unknown key 'k' (did you mean …)``,
    ``<source>: bad value for 'k' (<given>): <why>; allowed values: …`` or ``<source>: <why>`` for a check
    across keys. Configs raise it as :class:`ConfigError` (:func:`slicewise.config.validate`), settings made in code
    as their :class:`SettingsModel` says."""
    e = err.errors()[0]
    loc = tuple(e["loc"])
    key = ".".join(map(str, loc)) or "<root>"
    if e["type"] == "extra_forbidden":
        return f"{source}: unknown key {key!r}{_allowed(model, loc)}"
    msg = e["msg"].removeprefix("Value error, ")
    if not loc:  # a check across several keys: its message names them
        return f"{source}: {msg}"
    if e["type"] == "missing":  # its "input" is the enclosing mapping: never dump it
        return f"{source}: the required key {key!r} is missing: add it"
    given = repr(e.get("input"))
    given = given if len(given) <= 80 else given[:77] + "..."
    return f"{source}: bad value for {key!r} ({given}): {msg}{_allowed(model, loc)}"


def check_choice(value: Any, choices: Sequence[Any], what: str) -> Any:
    """``value`` when it is one of ``choices``, else ``ValueError("<what> 'v' is unknown: use one of a, b")`` (the
    wording of every settings model's choice fields)."""
    if value not in choices:
        raise ValueError(f"{what} {value!r} is unknown: use one of {', '.join(map(str, choices))}")
    return value


class SettingsModel(BaseModel):
    """Base of settings made in code or from command-line options (prediction, segmentation, augmentation).

    Unknown keys and bad values are refused when the object is made, in one line (:func:`validation_line`)
    prefixed by ``SOURCE`` and raised as ``ERROR``: the same style as a config file's errors. Inside a config
    (``TrainConfig.augment``) pydantic validates the fields itself, so the config's error names the nested key.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    SOURCE: ClassVar[str] = "settings"
    ERROR: ClassVar[type[Exception]] = InputError

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as err:
            raise self.ERROR(self.one_line(err)) from None

    # pydantic calls a model's own __init__ also for a nested value unless it is marked as pydantic's; marked,
    # a config's nested settings are validated as fields and their errors keep the config's key path
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    @classmethod
    def one_line(cls, err: ValidationError) -> str:
        """The one-line message of ``err``'s first problem (subclasses may word checks across keys)."""
        return validation_line(cls, err, cls.SOURCE)


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
