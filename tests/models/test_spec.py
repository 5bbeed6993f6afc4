"""MODEL arguments (``slicewise/models/spec.py``): encoder specs parsed into ModelConfig fields, files told apart
from encoder names without torch, and ``open_model`` building either kind."""

from __future__ import annotations

import subprocess
import sys

import pytest

from slicewise.errors import ConfigError, InputError
from slicewise.models.build import load_model, open_model, save_model
from slicewise.models.spec import check_encoder_name, check_model_arg, is_model_path, spec_fields

SMALL = dict(weights="random", decoder_channels=(16, 16, 8, 8, 8))


def test_spec_fields_split_the_encoder_from_its_fields() -> None:
    assert spec_fields("resnet18") == ("resnet18", {})
    assert spec_fields("tf_efficientnet_lite0: skips=0111 , channel_init=mirror") == (
        "tf_efficientnet_lite0",
        {"skips": "0111", "channel_init": "mirror"},
    )
    with pytest.raises(ConfigError, match=r"'skips' must look like key=value \(e.g. resnet18:skips=0111\)"):
        spec_fields("resnet18:skips")


def test_files_paths_and_encoder_names_are_told_apart(tmp_path, monkeypatch) -> None:
    (tmp_path / "best.pt").write_bytes(b"")
    assert is_model_path(str(tmp_path / "best.pt")) and is_model_path("runs/x/best.pt") and is_model_path("m.zip")
    assert not is_model_path("resnet18") and not is_model_path("resnet18:skips=0111")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "resnet18").mkdir()
    (tmp_path / "runs").mkdir()
    assert not is_model_path("resnet18") and is_model_path("runs")  # a folder is a path unless it names an encoder
    with pytest.raises(InputError, match="is a folder"):
        check_model_arg("runs")
    with pytest.raises(InputError, match="does not exist"):
        check_model_arg("missing.pt")
    check_model_arg("resnet18")  # an encoder spec passes unchecked here


def test_checking_a_model_argument_needs_no_torch(tmp_path) -> None:
    code = (
        "import sys; from slicewise.models.spec import check_model_arg, is_model_path; "
        f"assert is_model_path({str(tmp_path / 'm.pt')!r}) and not is_model_path('resnet18'); "
        "assert 'torch' not in sys.modules and 'timm' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_encoder_names_are_checked_with_suggestions() -> None:
    check_encoder_name("resnet18")
    with pytest.raises(ConfigError, match="did you mean"):
        check_encoder_name("resnet188")
    with pytest.raises(ConfigError, match="looks like a file path"):
        check_encoder_name("runs/best.pt")


def test_open_model_builds_specs_with_defaults_and_loads_files(tmp_path) -> None:
    net = open_model("test_resnet:skips=0111,classes=3", in_slices=5, **SMALL)
    assert net.config.skips == "0111" and net.config.classes == 3 and net.in_slices == 5
    path = save_model(net, tmp_path / "m.pt")
    back = open_model(str(path), in_slices=3)  # a file keeps its own settings
    assert back.config == load_model(path).config and back.in_slices == 5
