"""``slicewise evaluate``: printed table and JSON agree; bad input gives one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from slicewise.cli import main


def run(argv, capsys):
    code = 0
    try:
        main(argv)
    except SystemExit as ex:
        code = ex.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def label_files(tmp_path):
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 5, (3, 12, 12)).astype(np.uint16)
    pred = gt.copy()
    pred[:, :, :4] = rng.integers(0, 5, (3, 12, 4))
    tifffile.imwrite(tmp_path / "gt.tif", gt)
    tifffile.imwrite(tmp_path / "pred.tif", pred)
    prob = rng.random((3, 12, 12)).astype(np.float32)
    tifffile.imwrite(tmp_path / "prob.tif", prob)
    return tmp_path


def parse_table(text: str) -> dict[str, list[str]]:
    rows = {}
    for line in text.splitlines():
        cells = line.split()
        if cells and cells[0] not in ("metric", "z", "wrote") and not cells[0].isdigit():
            rows[cells[0]] = cells[1:]
    return rows


@pytest.mark.parametrize("kind", ["semantic", "instance"])
def test_json_numbers_equal_printed_numbers(label_files, capsys, kind):
    out_json = label_files / f"{kind}.json"
    argv = [
        "evaluate",
        str(label_files / "pred.tif"),
        str(label_files / "gt.tif"),
        "--kind",
        kind,
        "--json",
        str(out_json),
        "--per-slice",
    ]
    if kind == "instance":
        argv += ["--prob", str(label_files / "prob.tif")]
    code, out, err = run(argv, capsys)
    assert code == 0, err
    result = json.loads(out_json.read_text())
    printed = parse_table(out)
    flat = {}
    for k, v in result["volume"].items():
        flat.update({f"{k}[{c}]": x for c, x in v.items()} if isinstance(v, dict) else {k: v})
    assert set(printed) == set(flat)
    for k, v in flat.items():
        assert float(printed[k][0]) == pytest.approx(v, rel=5e-4, abs=1e-12)  # 4 significant digits
        assert float(printed[k][1]) == pytest.approx(result["slice_mean"][k], rel=5e-4, abs=1e-12)
    if kind == "instance":
        assert result["settings"]["scores"] == "mean foreground probability"
        assert 0 < result["volume"]["are"] < 1


def test_components_flag_scores_neurons(tmp_path, capsys):
    lab = np.full((2, 8, 8), 255, np.uint8)
    lab[:, 4, :] = 0
    tifffile.imwrite(tmp_path / "m.tif", lab)
    code, out, err = run(
        [
            "evaluate",
            str(tmp_path / "m.tif"),
            str(tmp_path / "m.tif"),
            "--kind",
            "instance",
            "--components",
            "both",
            "--json",
            str(tmp_path / "r.json"),
        ],
        capsys,
    )
    assert code == 0, err
    r = json.loads((tmp_path / "r.json").read_text())["volume"]
    assert r["n_gt"] == 4 and r["are"] == 0.0


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--kind", "panoptic"], "unknown evaluation kind"),
        (["--classes", "a,b"], "--classes"),
        (["--kind", "instance", "--prob", "missing.tif"], "does not exist"),
        (["--prob", "prob.tif"], "kind instance"),
        (["--fill"], "--components"),
        (["--components", "gt", "--fill"], "--components pred"),
        (["--components", "yes"], "gt, pred, both"),
        (["--label-map", "0:a"], "--label-map"),
        (["--label-map", "0:1"], "does not map"),
    ],
)
def test_bad_input_one_line_error(label_files, capsys, extra, match):
    extra = [str(label_files / e) if e.endswith(".tif") else e for e in extra]
    code, out, err = run(["evaluate", str(label_files / "pred.tif"), str(label_files / "gt.tif"), *extra], capsys)
    assert code == 2
    assert err.startswith("error: ") and match in err and err.count("\n") == 1


def test_shape_mismatch_and_float_labels(tmp_path, capsys):
    tifffile.imwrite(tmp_path / "a.tif", np.zeros((3, 6, 6), np.uint8))
    tifffile.imwrite(tmp_path / "b.tif", np.zeros((2, 4, 5), np.uint8))
    tifffile.imwrite(tmp_path / "f.tif", np.zeros((3, 6, 6), np.float32))
    code, _, err = run(["evaluate", str(tmp_path / "a.tif"), str(tmp_path / "b.tif")], capsys)
    assert code == 2 and "shape" in err and err.count("\n") == 1
    code, _, err = run(["evaluate", str(tmp_path / "f.tif"), str(tmp_path / "a.tif"), "--kind", "instance"], capsys)
    assert code == 2 and "float32" in err and err.count("\n") == 1


def test_existing_json_needs_overwrite(label_files, capsys):
    target = label_files / "r.json"
    target.write_text("{}")
    code, _, err = run(
        ["evaluate", str(label_files / "pred.tif"), str(label_files / "gt.tif"), "--json", str(target)], capsys
    )
    assert code == 2 and "--overwrite" in err
    code, _, err = run(
        ["evaluate", str(label_files / "pred.tif"), str(label_files / "gt.tif"), "--json", str(target), "--overwrite"],
        capsys,
    )
    assert code == 0 and json.loads(target.read_text())["kind"] == "semantic"


def _json(tmp_path, name, argv, capsys):
    out = tmp_path / f"{name}.json"
    code, _, err = run([*argv, "--json", str(out)], capsys)
    assert code == 0, err
    return json.loads(out.read_text())


def test_z_range_roi_block_and_dask_agree_with_cut_files(tmp_path, capsys):
    import h5py

    rng = np.random.default_rng(3)
    gt = rng.integers(0, 6, (6, 16, 16)).astype(np.uint64)  # uint64 with small ids, as CREMI / Zarr segmentations
    pred = gt.copy()
    pred[:, :, :5] = rng.integers(0, 6, (6, 16, 5))
    with h5py.File(tmp_path / "gt.h5", "w") as f:
        f["data"] = gt
    tifffile.imwrite(tmp_path / "pred.tif", pred.astype(np.uint16))
    tifffile.imwrite(tmp_path / "gt_cut.tif", gt[2:5, 3:12].astype(np.uint16))
    tifffile.imwrite(tmp_path / "pred_cut.tif", pred[2:5, 3:12].astype(np.uint16))
    base = ["evaluate", str(tmp_path / "pred.tif"), str(tmp_path / "gt.h5"), "--kind", "instance"]
    cut = _json(
        tmp_path,
        "cut",
        ["evaluate", str(tmp_path / "pred_cut.tif"), str(tmp_path / "gt_cut.tif"), "--kind", "instance"],
        capsys,
    )
    by_roi = _json(tmp_path, "roi", [*base, "--roi", "2:5,3:12", "--block", "2,4,5", "--dask", "threads"], capsys)
    by_z = _json(tmp_path, "z", [*base, "--z", "2:5", "--roi", ":,3:12"], capsys)
    assert by_roi["volume"] == by_z["volume"] == cut["volume"]
    assert by_roi["offset"] == [2, 3, 0] and by_roi["shape"] == [3, 9, 16]


@pytest.mark.parametrize(
    "make, extra, match",
    [
        (lambda: np.full((3, 6, 6), 2**63, np.uint64), [], "does not fit int64"),
        (lambda: np.full((3, 6, 6), -3, np.int16), [], "negative"),
        (lambda: np.ones((3, 6, 6), np.int16), ["--z", "3:9"], "empty"),
        (lambda: np.ones((3, 6, 6), np.int16), ["--block", "0,1,1"], "--block"),
        (lambda: np.ones((3, 6, 6), np.int16), ["--dask", "local:x"], "local:N"),
    ],
)
def test_label_values_and_options_refused_in_one_line(tmp_path, capsys, make, extra, match):
    import h5py

    with h5py.File(tmp_path / "p.h5", "w") as f:
        f["data"] = make()
    tifffile.imwrite(tmp_path / "g.tif", np.ones((3, 6, 6), np.uint8))
    code, _, err = run(
        ["evaluate", str(tmp_path / "p.h5"), str(tmp_path / "g.tif"), "--kind", "instance", *extra], capsys
    )
    assert code == 2 and err.startswith("error: ") and match in err and err.count("\n") == 1


def test_perfect_voi_prints_zero(tmp_path, capsys):
    tifffile.imwrite(tmp_path / "a.tif", np.ones((3, 6, 6), np.uint8))
    code, out, _ = run(["evaluate", str(tmp_path / "a.tif"), str(tmp_path / "a.tif"), "--kind", "instance"], capsys)
    assert code == 0 and "-0.0" not in out and parse_table(out)["voi"] == ["0"]


def test_label_map_makes_0_255_truth_comparable(tmp_path, capsys, caplog):
    """Prediction {0, 1} vs truth {0, 255}: a warning when no value is shared, Dice 1 with --label-map 0:0,255:1."""
    import logging

    caplog.set_level(logging.WARNING)
    gt = np.zeros((2, 8, 8), np.uint8)
    gt[:, :4] = 255
    pred = (gt > 0).astype(np.uint8)
    tifffile.imwrite(tmp_path / "gt.tif", gt)
    tifffile.imwrite(tmp_path / "pred.tif", pred)
    code, out, err = run(
        [
            "evaluate",
            str(tmp_path / "pred.tif"),
            str(tmp_path / "gt.tif"),
            "--classes",
            "1,255",
            "--json",
            str(tmp_path / "a.json"),
        ],
        capsys,
    )
    assert code == 0, err
    assert "share no value" not in err  # 0 is shared: no warning, just Dice 0 for 1 and 255
    assert not caplog.records
    code, out, err = run(
        ["evaluate", str(tmp_path / "pred.tif"), str(tmp_path / "gt.tif"), "--label-map", "0:5,255:6"], capsys
    )
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert code == 0 and len(warned) == 1 and "share no value" in warned[0] and "\n" not in warned[0]
    caplog.clear()
    code, out, err = run(
        [
            "evaluate",
            str(tmp_path / "pred.tif"),
            str(tmp_path / "gt.tif"),
            "--label-map",
            "0:0,255:1",
            "--json",
            str(tmp_path / "b.json"),
        ],
        capsys,
    )
    assert code == 0, err
    r = json.loads((tmp_path / "b.json").read_text())
    assert r["volume"]["dice"]["1"] == 1.0 and r["settings"]["label_map"] == {"0": 0, "255": 1}
    assert "warnings" not in r and not caplog.records


def test_components_gt_keeps_predicted_instances(tmp_path, capsys):
    """Watershed instances touching each other stay split with --components gt (both would re-merge them)."""
    gt = np.full((1, 8, 8), 255, np.uint8)
    gt[:, 4, :] = 0  # membrane row: two cells
    inst = np.zeros((1, 8, 8), np.int32)
    inst[:, :4] = 1
    inst[:, 4:] = 2  # touching instances, no gap
    tifffile.imwrite(tmp_path / "gt.tif", gt)
    tifffile.imwrite(tmp_path / "inst.tif", inst)
    res = {}
    for mode in ("gt", "both"):
        code, out, err = run(
            [
                "evaluate",
                str(tmp_path / "inst.tif"),
                str(tmp_path / "gt.tif"),
                "--kind",
                "instance",
                "--components",
                mode,
                "--json",
                str(tmp_path / f"{mode}.json"),
            ],
            capsys,
        )
        assert code == 0, err
        res[mode] = json.loads((tmp_path / f"{mode}.json").read_text())["volume"]
    assert res["gt"]["n_pred"] == 2 and res["gt"]["are"] == 0.0
    assert res["both"]["n_pred"] == 1 and res["both"]["are"] > 0


def test_class_names_label_the_table(tmp_path, capsys):
    gt = np.zeros((2, 8, 8), np.uint8)
    gt[:, :4] = 1
    tifffile.imwrite(tmp_path / "gt.tif", gt)
    code, out, err = run(
        [
            "evaluate",
            str(tmp_path / "gt.tif"),
            str(tmp_path / "gt.tif"),
            "--class-names",
            "background,membrane",
            "--per-slice",
            "--json",
            str(tmp_path / "r.json"),
        ],
        capsys,
    )
    assert code == 0, err
    rows = parse_table(out)
    assert rows["dice[membrane]"] == ["1", "1"] and rows["dice[background]"][0] == "1"
    assert json.loads((tmp_path / "r.json").read_text())["class_names"] == {"0": "background", "1": "membrane"}


def test_negative_classes_refused_and_absent_classes_not_scored(label_files, capsys):
    args = ["evaluate", str(label_files / "pred.tif"), str(label_files / "gt.tif")]
    code, out, err = run([*args, "--classes", "-1"], capsys)
    assert code == 2 and err.startswith("error: ") and "negative" in err and err.count("\n") == 1 and out == ""
    code, out, err = run([*args, "--classes", "1,255", "--json", str(label_files / "r.json")], capsys)
    assert code == 0
    rows = parse_table(out)
    assert rows["dice[255]"] == ["n/a"] and rows["dice[1]"] != ["n/a"] and rows["mean_dice"] == rows["dice[1]"]
    assert "class 255" in err and "warning" in err
    result = json.loads((label_files / "r.json").read_text())
    assert result["volume"]["dice"]["255"] is None and result["warnings"]


@pytest.mark.parametrize(
    "name, make, match",
    [
        ("raw.tif", lambda: np.full((3, 12, 12), 200, np.uint8), "integer data (uint8)"),
        ("c.tif", lambda: np.full((3, 12, 12), 0.5, np.complex64), "dtype complex64"),
    ],
)
def test_bad_prob_files_name_no_other_command(label_files, capsys, name, make, match):
    tifffile.imwrite(label_files / name, make())
    code, _, err = run(
        [
            "evaluate",
            str(label_files / "pred.tif"),
            str(label_files / "gt.tif"),
            "--kind",
            "instance",
            "--prob",
            str(label_files / name),
        ],
        capsys,
    )
    assert code == 2 and err.count("\n") == 1 and match in err
    assert "segment takes" not in err and "slicewise predict" in err


def test_a_2d_prob_map_scores_2d_labels(tmp_path, capsys):
    rng = np.random.default_rng(5)
    gt = rng.integers(0, 4, (16, 16)).astype(np.uint16)
    pred = gt.copy()
    pred[:4] = 0
    tifffile.imwrite(tmp_path / "gt.tif", gt)
    tifffile.imwrite(tmp_path / "pred.tif", pred)
    tifffile.imwrite(tmp_path / "fg2d.tif", rng.random((16, 16)).astype(np.float32))
    code, out, err = run(
        [
            "evaluate",
            str(tmp_path / "pred.tif"),
            str(tmp_path / "gt.tif"),
            "--kind",
            "instance",
            "--prob",
            str(tmp_path / "fg2d.tif"),
            "--json",
            str(tmp_path / "r.json"),
        ],
        capsys,
    )
    assert code == 0, err
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["settings"]["scores"] == "mean foreground probability" and result["shape"] == [1, 16, 16]
    assert "ap50" in parse_table(out)


def test_instance_kind_on_a_membrane_map_warns_naming_components_and_json_records_the_environment(tmp_path, capsys):
    lab = np.full((2, 8, 8), 255, np.uint8)
    lab[:, 4, :] = 0
    tifffile.imwrite(tmp_path / "m.tif", lab)
    code, out, err = run(
        [
            "evaluate",
            str(tmp_path / "m.tif"),
            str(tmp_path / "m.tif"),
            "--kind",
            "instance",
            "--json",
            str(tmp_path / "r.json"),
        ],
        capsys,
    )
    assert code == 0, err
    warnings = [line for line in err.splitlines() if "warning:" in line]
    assert len(warnings) == 1 and "--components gt" in warnings[0]
    r = json.loads((tmp_path / "r.json").read_text())
    env = r["environment"]
    assert env["versions"]["torch"] and env["threads"]["torch"] >= 1 and env["device"]["type"] == "cpu"
    code, out, err = run(
        ["evaluate", str(tmp_path / "m.tif"), str(tmp_path / "m.tif"), "--kind", "instance", "--components", "both"],
        capsys,
    )
    assert code == 0 and "warning:" not in err
