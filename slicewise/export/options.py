"""Export options checked before anything heavy is imported (torch, the model, ``bioimageio.spec`` where it can
wait): the output, the model file, the licence id, the test tensor's size, and the settings a run folder records.
"""

from __future__ import annotations

import difflib
import typing
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import Field, ValidationError

from slicewise.data.io.outputs import check_output_path
from slicewise.data.stacking import Border
from slicewise.errors import InputError
from slicewise.utils.inputs import check_model_file
from slicewise.utils.validation import MetadataModel, parse_metadata


def need_spec() -> Any:
    """``bioimageio.spec.model.v0_5`` (imported here: a few seconds), else a one-line InputError naming the extra."""
    try:
        import bioimageio.spec  # noqa: F401
    except ImportError:
        raise InputError("bioimage.io export needs the bioimageio extra: pip install 'slicewise[bioimageio]'") from None
    from bioimageio.spec.model import v0_5

    return v0_5


def check_license(license: str) -> str:
    """The SPDX licence id bioimage.io accepts for ``license`` (SPDX ids are case-insensitive: ``mit`` →
    ``MIT``); else a one-line :class:`InputError` with the closest ids and where the list is (never the
    whole list)."""
    v = need_spec()
    try:
        v.LicenseId(license)
        return license
    except ValidationError:
        pass
    from bioimageio.spec._internal.license_id import LicenseIdLiteral

    ids = [str(i) for i in typing.get_args(LicenseIdLiteral)]
    by_lower = {i.lower(): i for i in ids}
    key = str(license).strip().lower()
    if key in by_lower:
        return by_lower[key]
    longer = [i for i in ids if key and i.lower().startswith(key + "-")]  # GPL-2.0 → GPL-2.0-only, ...
    close = longer[:3] or [by_lower[c] for c in difflib.get_close_matches(key, list(by_lower), n=3, cutoff=0.75)]
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    raise InputError(
        f"--license {license!r} is not an SPDX licence id that bioimage.io accepts: {hint}use e.g. MIT, "
        f"Apache-2.0, BSD-3-Clause, CC-BY-4.0 or GPL-3.0-only (all ids: https://spdx.org/licenses/)"
    )


def check_test_size(test_size: int | None) -> int | None:
    """``test_size`` (the test tensor's side in pixels; ``None`` = default) if it is a positive integer,
    else a one-line :class:`InputError` (it was silently replaced by the size divisor before)."""
    if test_size is not None and (isinstance(test_size, bool) or int(test_size) != test_size or test_size < 1):
        raise InputError(
            f"--test-size {test_size}: give the test tensor's side in pixels, a positive integer "
            f"(e.g. 64; rounded up to the model's size divisor)"
        )
    return test_size


def check_target(model: Any, output: str | Path, overwrite: bool) -> Path:
    """The package path ``output`` checked before any work: a model file that exists (when ``model`` is a path),
    a ``.zip`` name, and a creatable output that is not an input (one-line :class:`InputError` otherwise)."""
    if isinstance(model, (str, Path)):
        check_model_file(model)
    out = Path(output)
    if out.suffix.lower() != ".zip":
        raise InputError(f"bioimage.io package {out} must end in .zip: e.g. {out.with_suffix('.zip').name}")
    check_output_path(out, overwrite=overwrite, inputs=(model,), kind="file")
    return out


class _RunData(MetadataModel):
    """The ``data`` fields of a run folder's ``config.yaml`` that an export reads (untrusted: validated)."""

    dz: Annotated[int, Field(strict=True, ge=1)] = 1
    border: Border = "reflect"
    raw: str | None = None
    labels: str | None = None
    synthetic: dict[str, Any] | None = None


class _RunConfig(MetadataModel):
    data: _RunData = _RunData()


def run_settings(model_path: Path | None) -> dict[str, Any]:
    """``dz``, ``border`` and a training-data line from the run folder's ``config.yaml`` next to a model file
    (validated: a bad field is one line naming the file and the field)."""
    if model_path is None or not (model_path.parent / "config.yaml").is_file():
        return {}
    path = model_path.parent / "config.yaml"
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    fix = "fix the run's config.yaml (or pass --dz / --training-data to export explicitly)"
    data = parse_metadata(_RunConfig, raw, path, fix).data.model_dump()
    if data.get("raw"):
        text = f"raw {Path(str(data['raw'])).name}" + (
            f", labels {Path(str(data['labels'])).name}" if data.get("labels") else ""
        )
    else:
        syn = data.get("synthetic") or {}
        text = f"The slicewise synthetic EM phantom (shape {syn.get('shape')}, seed {syn.get('seed')})"
    return {"dz": int(data.get("dz", 1)), "border": str(data.get("border", "reflect")), "training_data": text}
