"""Export options checked before the model is loaded (``slicewise/export/options.py``)."""

from __future__ import annotations

import pytest

from slicewise.errors import InputError
from slicewise.export.options import check_license, check_target, check_test_size, run_settings


def test_license_ids_are_case_insensitive():
    pytest.importorskip("bioimageio.spec", reason="the bioimageio extra is not installed")
    assert check_license("mit") == "MIT" and check_license("apache-2.0") == "Apache-2.0"


def test_target_and_test_size_are_checked_in_one_line(tmp_path):
    model = tmp_path / "best.pt"
    model.write_bytes(b"")
    assert check_target(model, tmp_path / "out.zip", overwrite=False) == tmp_path / "out.zip"
    with pytest.raises(InputError, match=r"must end in \.zip: e\.g\. out\.zip"):
        check_target(model, tmp_path / "out.tar", overwrite=False)
    with pytest.raises(InputError, match="does not exist"):
        check_target(tmp_path / "missing.pt", tmp_path / "out.zip", overwrite=False)
    assert check_test_size(None) is None and check_test_size(64) == 64
    for bad in (0, 2.5, True):
        with pytest.raises(InputError, match="positive integer"):
            check_test_size(bad)


def test_run_settings_come_from_the_run_folder(tmp_path):
    (tmp_path / "config.yaml").write_text("data:\n  dz: 3\n  border: replicate\n  raw: /data/em.tif\n")
    assert run_settings(tmp_path / "best.pt") == {"dz": 3, "border": "replicate", "training_data": "raw em.tif"}
    assert run_settings(None) == {} and run_settings(tmp_path / "sub" / "best.pt") == {}
