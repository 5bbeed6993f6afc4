"""``slicewise pretrain``: one run from TIFF volumes, ``model info`` on its weights, bad inputs as one line."""

from __future__ import annotations

import numpy as np
import pytest

from slicewise.data import write_volume

TINY = [
    "--encoder",
    "test_efficientnet",
    "--steps",
    "2",
    "model.weights=random",
    "data.patch_size=32",
    "data.batch_size=4",
    "method.memory_bank=16",
    "trainer.accelerator=cpu",
    "trainer.val_every=2",
]


@pytest.fixture(scope="module")
def volumes(tmp_path_factory, phantom_small):
    d = tmp_path_factory.mktemp("vols")
    raw, labels = d / "raw.tif", d / "labels.tif"
    write_volume(raw, phantom_small.raw)
    write_volume(labels, phantom_small.semantic)
    return raw, labels


@pytest.fixture(scope="module")
def phantom_small():
    from slicewise.data.synthetic import make_phantom

    return make_phantom(shape=(6, 64, 64), seed=0)


def test_pretrain_writes_weights_that_model_info_describes(cli, volumes, tmp_path):
    raw, labels = volumes
    code, out, err = cli(
        ["pretrain", raw, raw, "--out", tmp_path / "run", *TINY, f"data.probe_labels={labels}", "--threads", "1"]
    )
    assert code == 0, err
    assert f"weights     {tmp_path / 'run' / 'encoder.safetensors'}" in out and "k-NN probe" in out
    assert "pretraining test_efficientnet uniform with mocov2 on 2 volume(s)" in err
    code, out, err = cli(["model", "info", tmp_path / "run" / "encoder.safetensors"])
    assert code == 0, err
    assert "mocov2, 2 steps" in out and str(raw.resolve()) in out and "model.channel_init=uniform" in out


@pytest.mark.parametrize(
    "case, pattern",
    [
        ("missing", "does not exist"),
        ("labels", "looks like a label volume"),
        ("thin", "k=5 slices at z-step 2 span 9 slices but the volume has only 6"),
        ("key", "unknown key 'method.nam'"),
        ("method", "bad value for 'method.name'"),
    ],
)
def test_bad_inputs_are_one_error_line(cli, volumes, tmp_path, case, pattern):
    raw, labels = volumes
    argv = {
        "missing": [tmp_path / "none.tif"],
        "labels": [labels],
        "thin": [raw, "model.in_slices=5", "data.dz=2"],
        "key": [raw, "method.nam=byol"],
        "method": [raw, "--method", "simclr"],
    }[case]
    code, out, err = cli(["pretrain", *argv, "--out", tmp_path / case, *TINY[2:]])
    assert code == 2 and out == ""
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and pattern in lines[0], err
    assert "Traceback" not in err
    assert not (tmp_path / case / "encoder.safetensors").exists()


def test_collapse_is_one_warning_line(cli, tmp_path):
    flat = tmp_path / "flat.tif"
    write_volume(flat, np.full((4, 64, 64), 0.5, np.float32))  # every view is the same image: nothing to tell apart
    off = "{flip: 0, rot90: 0, z_reverse: 0, brightness: 0, contrast: 0, gamma: 0, noise: 0, blur: 0}"
    code, out, err = cli(
        ["pretrain", flat, "--out", tmp_path / "flat", *TINY[:2], "--steps", "4", *TINY[4:], f"views.augment={off}"]
    )
    assert code == 0, err
    warnings = [ln for ln in err.splitlines() if "embedding collapsed" in ln]
    assert len(warnings) == 1 and "warning" in warnings[0].lower()


def test_pretrain_on_isbi_with_its_labels_as_probe(cli, isbi_crop, tmp_path):
    raw, labels = isbi_crop
    write_volume(tmp_path / "isbi.tif", raw)
    write_volume(tmp_path / "isbi-labels.tif", labels)
    code, out, err = cli(
        [
            "pretrain",
            tmp_path / "isbi.tif",
            "--out",
            tmp_path / "run",
            *TINY,
            "data.dz=2",
            f"data.probe_labels={tmp_path / 'isbi-labels.tif'}",
            "data.probe_label_map={0: 1, 255: 0}",
            "views.z_context=2",
        ]
    )
    assert code == 0, err
    assert "k-NN probe" in out
    code, out, err = cli(["pretrain", tmp_path / "isbi-labels.tif", "--out", tmp_path / "wrong", *TINY])
    assert code == 2 and "looks like a label volume" in err and "2 distinct integer values (0, 255)" in err
