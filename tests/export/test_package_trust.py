"""Imported packages are untrusted: the description is validated (bioimage.io's own validation and
slicewise's fields), file names stay inside the package, the weights' sha256 is checked before loading."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch
import yaml

from slicewise.errors import InputError
from slicewise.models import load_model


def _unpack(pkg: Path, dest: Path) -> Path:
    with zipfile.ZipFile(pkg) as z:
        z.extractall(dest)
    return dest


def _rdf(folder: Path) -> tuple[Path, dict]:
    p = next(folder / n for n in ("bioimageio.yaml", "rdf.yaml") if (folder / n).is_file())
    return p, yaml.safe_load(p.read_text())


def test_weights_altered_after_export_are_refused_before_loading(exported, tmp_path, monkeypatch):
    _, _, pkg = exported
    folder = _unpack(pkg, tmp_path / "pkg")
    _, rdf = _rdf(folder)
    weights = folder / rdf["weights"]["pytorch_state_dict"]["source"]
    state = torch.load(weights, weights_only=True)
    first = next(iter(state))
    state[first] = state[first] + 1.0
    torch.save(state, weights)
    loads: list[object] = []
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(a))
    with pytest.raises(InputError, match=r"sha256 .* altered or damaged after export") as err:
        load_model(folder)
    assert "\n" not in str(err.value) and not loads  # refused before anything was unpickled


def test_a_description_bioimageio_rejects_is_one_line(exported, tmp_path):
    _, _, pkg = exported
    folder = _unpack(pkg, tmp_path / "pkg")
    path, rdf = _rdf(folder)
    rdf["inputs"] = "one tensor"  # slicewise's own fields are intact: bioimage.io's validation refuses it
    path.write_text(yaml.safe_dump(rdf))
    with pytest.raises(InputError, match="bioimage.io validation failed at field 'inputs'"):
        load_model(folder)


@pytest.mark.parametrize("source", ["../best.pt", "/etc/passwd"])
def test_a_weights_path_outside_the_package_is_refused(exported, tmp_path, source):
    model, model_file, pkg = exported
    folder = _unpack(pkg, tmp_path / "pkg")
    path, rdf = _rdf(folder)
    rdf["weights"]["pytorch_state_dict"]["source"] = source
    path.write_text(yaml.safe_dump(rdf))
    with pytest.raises(InputError, match="weights.pytorch_state_dict.source.*not a file inside the package"):
        load_model(folder)
