"""Import (``slicewise/models/package.py``, built by ``slicewise/models/build.py``): slicewise reads the packages
it exports — ``load_model``, ``slicewise model info`` and ``slicewise predict`` accept them with outputs equal to
the original model's."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import torch
import yaml

from slicewise.errors import InputError
from slicewise.models.build import load_package
from slicewise.models.package import is_package


def test_round_trip_equal_weights_and_predictions(exported) -> None:
    from slicewise import load_model, predict
    from slicewise.data.synthetic import make_phantom

    model, _, pkg = exported
    back = load_model(pkg)
    assert back.config == model.config and back.package["dz"] == 2
    ref = model.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in back.state_dict().items()) and back.state_dict().keys() == ref.keys()
    vol = make_phantom(shape=(5, 64, 96), seed=1).raw
    np.testing.assert_array_equal(
        predict(back, vol, tile=64, overlap=0.25, device="cpu", progress=False),  # the package's dz = 2
        predict(model, vol, tile=64, overlap=0.25, dz=2, device="cpu", progress=False),
    )


def test_cli_model_info_and_predict_accept_a_package(exported, tmp_path, cli) -> None:
    import tifffile

    from slicewise.data.synthetic import make_phantom

    _, model_file, pkg = exported
    code, out, err = cli(["model", "info", str(pkg), "--json", "--size", "64"])
    assert code == 0, err
    info = json.loads(out)
    assert info.pop("package") == {
        "name": "slicewise test_resnet uniform k3",
        "format_version": "0.5.12",
        "dz": 2,
        "border": "reflect",
    }
    code, out, _ = cli(["model", "info", str(model_file), "--json", "--size", "64"])
    assert json.loads(out) == info and info["skips"] == "0111" and info["heads"]["boundary"] == [2, 3]
    code, out, _ = cli(["model", "info", str(pkg), "--size", "64"])
    assert code == 0 and "dz=2" in out and "bioimage.io package" in out

    tifffile.imwrite(tmp_path / "raw.tif", make_phantom(shape=(6, 64, 64), seed=2).raw)
    runs = ((pkg, "a.tif", ()), (model_file, "b.tif", ("--dz", "2")), (pkg, "c.tif", ("--dz", "1")))
    for src, name, extra in runs:
        code, _, err = cli(
            [
                "predict",
                str(src),
                str(tmp_path / "raw.tif"),
                str(tmp_path / name),
                "--tile",
                "64",
                "--device",
                "cpu",
                *extra,
            ]
        )
        assert code == 0, err
    a, b, c = (tifffile.imread(tmp_path / n) for n in ("a.tif", "b.tif", "c.tif"))
    np.testing.assert_array_equal(a, b)  # the package's dz (2) is used unless --dz says otherwise
    assert np.abs(a - c).max() > 1e-4


def _replicate_variant(pkg, folder):
    """An unpacked copy of ``pkg`` whose description says ``border: replicate`` (dz stays 2)."""
    with zipfile.ZipFile(pkg) as zf:
        zf.extractall(folder)
    description = next(folder / n for n in ("bioimageio.yaml", "rdf.yaml") if (folder / n).is_file())
    rdf = yaml.safe_load(description.read_text())
    rdf["config"]["slicewise"]["border"] = "replicate"
    description.write_text(yaml.safe_dump(rdf, sort_keys=False))
    return folder


def test_package_defaults_are_applied_by_load_model_for_api_predict_to_and_cli(exported, tmp_path, cli) -> None:
    """A package's dz and border come with the loaded model: predict, predict_to and ``slicewise predict`` use
    them unless told otherwise, and give the same arrays."""
    import tifffile

    from slicewise import load_model, predict, predict_to, read_prediction
    from slicewise.data.synthetic import make_phantom

    model, _, pkg = exported
    pkg = _replicate_variant(pkg, tmp_path / "pkg")
    net = load_model(pkg)
    assert net.defaults == {"dz": 2, "border": "replicate"} and net.package["border"] == "replicate"
    assert net.config.channel_names == ["cytoplasm", "membrane", "boundary"]
    vol = make_phantom(shape=(5, 64, 96), seed=1).raw
    tifffile.imwrite(tmp_path / "raw.tif", vol)
    opts = dict(tile=64, overlap=0.25, device="cpu", progress=False)
    api = predict(net, vol, **opts)
    np.testing.assert_array_equal(api, predict(model, vol, dz=2, border="replicate", **opts))
    assert np.abs(api - predict(model, vol, **opts)).max() > 1e-4  # the defaults (1, reflect) differ
    assert np.abs(api - predict(net, vol, border="reflect", **opts)).max() > 1e-4  # explicit settings win
    written = predict_to(pkg, tmp_path / "raw.tif", tmp_path / "api.tif", **opts)
    code, _, err = cli(["predict", pkg, tmp_path / "raw.tif", tmp_path / "cli.tif", "--tile", "64", "--device", "cpu"])
    assert code == 0, err
    for out in (written, tmp_path / "cli.tif"):
        with read_prediction(out) as pred:
            np.testing.assert_array_equal(np.asarray(pred.probabilities[...]), api)
            assert pred.channels == ["cytoplasm", "membrane", "boundary"]


def test_cli_export_writes_a_tested_package(exported, tmp_path, cli) -> None:
    _, model_file, _ = exported
    out = tmp_path / "cli.zip"
    code, stdout, err = cli(
        [
            "export",
            "bioimageio",
            str(model_file),
            str(out),
            "--no-torchscript",
            "--dz",
            "1",
            "--cite",
            "Cardona et al. 2010, ISBI 2012 data|10.1371/journal.pbio.1000502",
            "--tag",
            "isbi2012",
            "--test",
        ]
    )
    assert code == 0, err
    assert stdout.strip() == str(out)  # the package path alone on stdout; the verdict is a status line
    assert f"bioimage.io test of {out} passed" in err
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
        rdf = yaml.safe_load(zf.read("rdf.yaml" if "rdf.yaml" in names else "bioimageio.yaml"))
    assert "weights.torchscript.pt" not in names and "torchscript" not in rdf["weights"]
    assert "10.1371/journal.pbio.1000502" in {c["doi"] for c in rdf["cite"]} and "isbi2012" in rdf["tags"]
    assert rdf["inputs"][0]["axes"][1]["channel_names"] == ["z-1", "z+0", "z+1"]
    code, _, err = cli(["export", "bioimageio", str(model_file), str(out)])
    assert code == 2 and err.startswith("error:") and "exists" in err
    code, _, err = cli(["export", "bioimageio", str(model_file), str(tmp_path / "c.zip"), "--cite", "no doi"])
    assert code == 2 and "TEXT|DOI" in err


def test_foreign_and_broken_packages_are_one_line_errors(exported, tmp_path) -> None:
    _, _, pkg = exported
    foreign = tmp_path / "foreign.zip"
    with zipfile.ZipFile(foreign, "w") as zf:
        zf.writestr("rdf.yaml", yaml.safe_dump({"type": "model", "name": "other", "weights": {}}))
    assert is_package(foreign)
    with pytest.raises(InputError, match="not exported by slicewise"):
        load_package(foreign)
    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(pkg) as src, zipfile.ZipFile(broken, "w") as dst:
        for n in src.namelist():
            if n != "weights.pt":
                dst.writestr(n, src.read(n))
    with pytest.raises(InputError, match="lacks the file 'weights.pt'"):
        load_package(broken)
    plain = tmp_path / "plain.zip"
    with zipfile.ZipFile(plain, "w") as zf:
        zf.writestr("x.txt", "x")
    assert not is_package(plain) and not is_package(tmp_path / "missing.zip")
    with pytest.raises(InputError, match="not a bioimage.io model package"):
        load_package(plain)


def test_unpacked_package_folder_loads(exported, tmp_path) -> None:
    model, _, pkg = exported
    with zipfile.ZipFile(pkg) as zf:
        zf.extractall(tmp_path / "unpacked")
    back = load_package(tmp_path / "unpacked")
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in back.state_dict().items())


def test_core_install_loads_packages_without_bioimageio_napari_or_qt(exported) -> None:
    """Loading a package and registering every CLI command never imports the optional extras."""
    import subprocess
    import sys

    _, _, pkg = exported
    code = (
        "import sys\n"
        "for m in ('bioimageio', 'bioimageio.spec', 'bioimageio.core', 'napari', 'npe2', 'qtpy', 'PyQt5'):\n"
        "    sys.modules[m] = None\n"
        "from slicewise.cli import register_commands\nregister_commands()\n"
        f"from slicewise import load_model\nm = load_model({str(pkg)!r})\nprint(m.config.skips)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "0111"


def test_core_dependencies_exclude_the_extras() -> None:
    """pyproject: napari, Qt and bioimageio only in their extras; the napari manifest is shipped and registered."""
    import re
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    core = {re.split(r"[<>=\[ ;]", d)[0].lower() for d in project["dependencies"]}
    assert not core & {
        "napari",
        "npe2",
        "pyqt5",
        "pyqt6",
        "pyside2",
        "pyside6",
        "qtpy",
        "bioimageio.core",
        "bioimageio.spec",
        "pytest-qt",
    }
    extras = project["optional-dependencies"]
    assert any(d.startswith("napari") for d in extras["napari"]) and any(
        d.startswith("bioimageio.core") for d in extras["bioimageio"]
    )
    module, _, name = project["entry-points"]["napari.manifest"]["slicewise"].partition(":")
    assert (root / module.replace(".", "/") / name).is_file()
    ci = (root / ".ci" / "run").read_text()
    readme = (root / "README.md").read_text()
    install = 'python -m pip install -e ".[test,napari,bioimageio]"'
    assert install in ci and install in readme
