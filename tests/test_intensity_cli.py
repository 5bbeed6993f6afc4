"""One intensity rule for every command that reads raw intensities (sweep findings 3a, 4, 5 and the demo items of 12):
complex input, crushed integers and float outside [0, 1] are one-line errors (exit 2) before any training or
prediction, nothing is left at the output, and the fix names only options the command has."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml

BAD = {  # name → (array from the uint8 raw, words of the error)
    "cplx": (lambda r: r.astype(np.complex64), "dtype complex64: expected integer or float intensities"),
    "i64": (lambda r: r.astype(np.int64), "is int64 with values 0..255, under 1/256 of the int64 maximum"),
    "neg": (lambda r: r.astype(np.int16) - 5, "is int16 with negative values (min -5)"),
    "f255": (lambda r: r.astype(np.float32), "is float with values 0..255 outside [0, 1]"),
}


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from slicewise.models import build_model, save_model

    k = tmp_path_factory.mktemp("intensity")
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, (8, 64, 64), dtype=np.uint8)
    raw[0, 0, 0] = 255
    tifffile.imwrite(k / "raw.tif", raw)
    tifffile.imwrite(k / "lab.tif", (raw > 128).astype(np.uint8))
    tifffile.imwrite(k / "neglab.tif", (raw > 128).astype(np.int16) - 1)
    tifffile.imwrite(k / "raw2.tif", raw[:2])
    tifffile.imwrite(k / "lab2.tif", (raw[:2] > 128).astype(np.uint8))
    for name, (make, _) in BAD.items():
        tifffile.imwrite(k / f"{name}.tif", make(raw))
    model = {
        "encoder": "tf_efficientnet_lite0",
        "weights": "random",
        "in_slices": 3,
        "classes": 2,
        "decoder_channels": [8, 8, 8, 8, 8],
    }
    save_model(build_model(**model), k / "model.pt")
    for name in [*BAD, "raw"]:
        cfg = {
            "seed": 0,
            "data": {
                "raw": str(k / f"{name}.tif"),
                "labels": str(k / "lab.tif"),
                "patch_size": 32,
                "batch_size": 2,
                "num_workers": 0,
                "val_patches": 1,
                "val_fraction": 0.3,
            },
            "model": model,
            "optim": {"lr": 1e-3, "warmup_steps": 1},
            "trainer": {"max_steps": 1, "val_every": 1},
        }
        (k / f"{name}.yaml").write_text(yaml.safe_dump(cfg))
    return k


def _one_error(code: int, err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("name", list(BAD))
def test_predict_refuses_with_normalize_as_the_fix(cli, kit, tmp_path, name):
    code, _, err = cli(["predict", kit / "model.pt", kit / f"{name}.tif", tmp_path / "p.zarr", "--tile", "64"])
    line = _one_error(code, err)
    assert BAD[name][1] in line
    assert ("--normalize percentile" in line) == (name != "cplx")  # normalizing cannot make complex data real
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_predict_normalize_percentile_takes_wide_integers(cli, kit, tmp_path):
    code, out, err = cli(
        ["predict", kit / "model.pt", kit / "i64.tif", tmp_path / "p.tif", "--tile", "64", "--normalize", "percentile"]
    )
    assert code == 0, err
    assert tifffile.imread(tmp_path / "p.tif").shape == (8, 64, 64, 2)  # Z×Y×X×C probabilities


@pytest.mark.parametrize("name", list(BAD))
def test_train_refuses_before_training_with_a_fix_it_can_follow(cli, kit, tmp_path, name):
    code, _, err = cli(["train", kit / f"{name}.yaml", "--out", tmp_path / "run"])
    line = _one_error(code, err)
    assert BAD[name][1] in line and "uint8" in line and "--normalize" not in line  # train has no normalization
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name", ["i64", "f255", "neg", "cplx"])
@pytest.mark.parametrize("audit", ["attribution", "shift"])
def test_audits_refuse_with_a_fix_they_can_follow(cli, kit, tmp_path, name, audit):
    extra = ["--shift", "contrast=0.5"] if audit == "shift" else []
    code, _, err = cli(
        [
            "audit",
            audit,
            kit / "model.pt",
            kit / f"{name}.tif",
            "--tiles",
            "2",
            "--tile",
            "64",
            *extra,
            "--json",
            tmp_path / "a.json",
        ]
    )
    line = _one_error(code, err)
    assert BAD[name][1] in line and "--normalize" not in line
    assert not (tmp_path / "a.json").exists()


DEMO_ONLY = ("--normalize", "label_map", "ignore_index", "lower k", "z-step")  # options the demo does not have


@pytest.mark.parametrize(
    "raw, labels, words",
    [
        ("f255", "lab", BAD["f255"][1]),
        ("i64", "lab", BAD["i64"][1]),
        ("cplx", "lab", BAD["cplx"][1]),
        (
            "raw",
            "neglab",
            "hold negative values (-1): the demo takes class ids 0, 1, 2, ... or ISBI 0/255 membrane labels",
        ),
        ("raw2", "lab2", "it needs at least 3 slices; the stack has 2"),
    ],
)
def test_demo_checks_everything_before_training_with_fixes_it_offers(cli, kit, tmp_path, raw, labels, words):
    code, _, err = cli(
        [
            "demo",
            "--raw",
            kit / f"{raw}.tif",
            "--labels",
            kit / f"{labels}.tif",
            "--out",
            tmp_path / "demo",
            "--steps",
            "1",
            "--patch",
            "64",
        ]
    )
    line = _one_error(code, err)
    assert words in line and not any(w in line for w in DEMO_ONLY), line
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no folder, no train-rgb/ left behind


def test_demo_runs_an_8_slice_stack_through_to_the_attribution(cli, kit, tmp_path):
    """An 8-slice stack holds out 2 slices: the attribution reads their context from the whole stack (it used to fail
    with 'k=3 slices ... the volume has only 2' after the first model had trained)."""
    code, out, err = cli(
        [
            "demo",
            "--raw",
            kit / "raw.tif",
            "--labels",
            kit / "lab.tif",
            "--out",
            tmp_path / "demo",
            "--steps",
            "1",
            "--patch",
            "64",
            "--strategy",
            "rgb",
        ]
    )
    assert code == 0, err
    assert "held-out slices 6:8" in out and (tmp_path / "demo" / "results.json").is_file()
