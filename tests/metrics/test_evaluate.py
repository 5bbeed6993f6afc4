"""evaluate(): JSON-ready results, per-slice = each slice alone, probability layouts, errors, helpers."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from skimage.metrics import adapted_rand_error

from slicewise.errors import InputError
from slicewise.metrics import evaluate, format_table, membranes_to_neurons

volumes = hnp.arrays(np.int32, (3, 6, 7), elements=st.integers(0, 4))


@settings(max_examples=25, deadline=None)
@given(volumes, volumes, st.sampled_from(["semantic", "instance"]))
def test_per_slice_equals_each_slice_alone(pred, gt, kind):
    r = evaluate(pred, gt, kind=kind, classes=[0, 1, 2, 3, 4] if kind == "semantic" else None, per_slice=True)
    assert [row["z"] for row in r["per_slice"]] == [0, 1, 2]
    for z, row in enumerate(r["per_slice"]):
        alone = evaluate(pred[z], gt[z], kind=kind, classes=[0, 1, 2, 3, 4] if kind == "semantic" else None)["volume"]
        assert {k: v for k, v in row.items() if k != "z"} == alone
    assert r["slice_mean"]["foreground_dice"] == pytest.approx(
        np.mean([row["foreground_dice"] for row in r["per_slice"]])
    )
    assert json.loads(json.dumps(r)) == r  # plain JSON types only


def test_instance_result_keys_and_values():
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 6, (2, 16, 16))
    pred = rng.integers(0, 6, (2, 16, 16))
    v = evaluate(pred, gt, kind="instance")["volume"]
    assert set(v) == {
        "are",
        "rand_f",
        "rand_precision",
        "rand_recall",
        "voi_split",
        "voi_merge",
        "voi",
        "ap",
        "ap50",
        "ap75",
        "n_pred",
        "n_gt",
        "seg_accuracy",
        "foreground_dice",
    }
    assert v["are"] == pytest.approx(adapted_rand_error(gt, pred, ignore_labels=(0,))[0], abs=1e-9)
    assert all(type(x) in (float, int) for x in v.values())
    kept = evaluate(pred, gt, kind="instance", ignore_gt_zero=False)["volume"]
    assert kept["are"] == pytest.approx(adapted_rand_error(gt, pred, ignore_labels=())[0], abs=1e-9)


def test_semantic_result_and_table():
    gt = np.array([[0, 255, 255], [0, 0, 255]], np.uint8)
    pred = np.array([[0, 255, 0], [0, 0, 255]], np.uint8)
    r = evaluate(pred, gt)
    assert r["shape"] == [1, 2, 3]
    assert r["volume"]["dice"] == {"0": pytest.approx(6 / 7), "255": pytest.approx(4 / 5)}
    assert r["volume"]["mean_dice"] == pytest.approx((6 / 7 + 4 / 5) / 2)
    table = format_table(r)
    assert "dice[255]" in table and "0.8571" in table and "0.6667" in table  # 4 significant digits


def test_probability_layouts_give_the_same_scores():
    gt = np.zeros((1, 2, 5), np.int32)
    gt[...] = 1
    pred = np.zeros((1, 2, 5), np.int32)
    pred[..., :3], pred[..., 3:] = 1, 2
    fg = np.where(pred == 2, 0.9, 0.6).astype(np.float32)
    two_class = np.stack([1 - fg, fg])
    a = evaluate(pred, gt, kind="instance", prob=fg)["volume"]["ap50"]
    b = evaluate(pred, gt, kind="instance", prob=two_class)["volume"]["ap50"]
    c = evaluate(pred[0], gt[0], kind="instance", prob=two_class[:, 0])["volume"]["ap50"]
    assert a == b == c == pytest.approx(0.5)
    assert evaluate(pred, gt, kind="instance")["volume"]["ap50"] == 1.0


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: evaluate(np.zeros((2, 3)), np.zeros((2, 3), int), kind="instance"), "dtype float"),
        (lambda: evaluate(np.zeros((2, 3), int), np.zeros((2, 4), int)), "shape"),
        (lambda: evaluate(np.zeros((2, 3), int), np.zeros((2, 3), int), kind="panoptic"), "kind"),
        (
            lambda: evaluate(np.zeros((2, 3), int), np.zeros((2, 3), int), kind="instance", prob=np.ones((4, 4))),
            "probability shape",
        ),
        (
            lambda: evaluate(np.zeros((2, 3), int), np.zeros((2, 3), int), kind="instance", prob=np.full((2, 3), 3.0)),
            "within",
        ),
        (lambda: evaluate(np.arange(600).reshape(20, 30), np.zeros((20, 30), int)), "instance"),
        (lambda: evaluate(np.zeros((2, 2, 2, 2), int), np.zeros((2, 2, 2, 2), int)), "Z×Y×X"),
    ],
)
def test_bad_input_one_line_errors(call, match):
    with pytest.raises(InputError, match=match) as err:
        call()
    assert "\n" not in str(err.value)


def test_result_written_as_json_atomic_and_overwrite(tmp_path):
    from slicewise.utils import write_json

    r = evaluate(np.ones((2, 2), int), np.ones((2, 2), int))
    out = tmp_path / "m.json"
    write_json(out, r)
    assert json.loads(out.read_text()) == r
    with pytest.raises(InputError, match="exists"):
        write_json(out, r)
    write_json(out, r, overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_deprecated_save_json_still_writes_with_a_warning(tmp_path):
    import slicewise.metrics as metrics

    r = evaluate(np.ones((2, 2), int), np.ones((2, 2), int))
    with pytest.warns(DeprecationWarning, match="write_json"):
        metrics.save_json(r, tmp_path / "m.json")
    assert json.loads((tmp_path / "m.json").read_text()) == r


def _two_class_maps():
    gt = np.zeros((2, 4, 6), np.int32)
    gt[:, :, 3:] = 1
    pred = gt.copy()
    pred[:, 0, :] = 1
    return pred, gt


@pytest.mark.parametrize("classes", [[-1], [0, -2]])
def test_negative_classes_are_refused_in_one_line(classes):
    pred, gt = _two_class_maps()
    with pytest.raises(InputError, match="negative") as err:
        evaluate(pred, gt, classes=classes)
    assert "\n" not in str(err.value)


def test_classes_with_instance_evaluation_are_refused_not_ignored():
    pred, gt = _two_class_maps()
    with pytest.raises(InputError, match="instance evaluation scores objects") as err:
        evaluate(pred, gt, kind="instance", classes=[1])
    assert "\n" not in str(err.value)
    assert evaluate(pred, gt, kind="instance")["volume"]  # without classes: scored as before


def test_a_listed_class_in_neither_map_is_not_scored_and_warns(caplog):
    pred, gt = _two_class_maps()
    base = evaluate(pred, gt)["volume"]
    r = evaluate(pred, gt, classes=[0, 1, 7], per_slice=True)
    vol = r["volume"]
    assert vol["dice"]["7"] is None and vol["iou"]["7"] is None  # never the empty rule's perfect 1
    assert vol["dice"]["1"] == base["dice"]["1"] and vol["mean_dice"] == pytest.approx(base["mean_dice"])
    assert vol["mean_iou"] == pytest.approx(base["mean_iou"])
    assert len(r["warnings"]) == 1 and "class 7" in r["warnings"][0] and "\n" not in r["warnings"][0]
    assert "class 7" in caplog.text
    assert all(row["dice"]["7"] is None for row in r["per_slice"]) and r["slice_mean"]["dice[7]"] is None
    assert "n/a" in format_table(r).split("dice[7]")[1].splitlines()[0]
    only = evaluate(pred, gt, classes=[7])["volume"]
    assert only["mean_dice"] is None and only["mean_iou"] is None
    assert json.loads(json.dumps(r)) == r


def test_a_class_absent_from_one_slice_is_averaged_over_the_slices_that_have_it():
    pred, gt = _two_class_maps()
    pred[1], gt[1] = 0, 0  # class 1 only in slice 0
    r = evaluate(pred, gt, classes=[0, 1], per_slice=True)
    assert r["per_slice"][1]["dice"]["1"] is None
    assert r["slice_mean"]["dice[1]"] == pytest.approx(r["per_slice"][0]["dice"]["1"])
    assert "warnings" not in r  # class 1 is in the volume


def test_a_2d_probability_file_scores_2d_labels(tmp_path):
    import tifffile

    pred = np.zeros((2, 5), np.int32)
    pred[:, :3], pred[:, 3:] = 1, 2
    gt = np.ones((2, 5), np.int32)
    fg = np.where(pred == 2, 0.9, 0.6).astype(np.float32)
    tifffile.imwrite(tmp_path / "fg2d.tif", fg)
    from_file = evaluate(pred, gt, kind="instance", prob=str(tmp_path / "fg2d.tif"))["volume"]
    assert from_file == evaluate(pred, gt, kind="instance", prob=fg)["volume"]
    assert from_file["ap50"] == pytest.approx(0.5)  # the probabilities, not the sizes, ranked the instances


@pytest.mark.parametrize("as_file", [False, True])
def test_complex_probabilities_are_refused_naming_the_dtype(tmp_path, as_file):
    import tifffile

    pred, gt = _two_class_maps()
    prob = np.full(pred.shape, 0.5, np.complex64)
    if as_file:
        tifffile.imwrite(tmp_path / "c.tif", prob)
        prob = str(tmp_path / "c.tif")
    with pytest.raises(InputError, match="dtype complex64") as err:
        evaluate(pred, gt, kind="instance", prob=prob)
    assert "\n" not in str(err.value)


def _membrane_gt_and_cells() -> tuple[np.ndarray, np.ndarray]:
    """ISBI-style ground truth (0 membrane rows, 255 interior on most voxels) and predicted cell instances."""
    gt = np.full((2, 12, 12), 255, np.uint8)
    gt[:, ::4, :] = 0
    cells = membranes_to_neurons(gt != 0, interior=1, per_slice=True).astype(np.int32)
    return gt, cells


def test_instance_scores_against_semantic_looking_gt_warn_once_naming_the_flag(caplog):
    gt, cells = _membrane_gt_and_cells()
    r = evaluate(cells, gt, kind="instance")
    assert r["volume"]["n_gt"] == 1  # the silent wrong score the warning is about
    assert len(r["warnings"]) == 1 and "--components gt" in r["warnings"][0] and "\n" not in r["warnings"][0]
    assert "looks semantic" in caplog.text and caplog.text.count("--components gt") == 1
    caplog.clear()
    fixed = evaluate(cells, membranes_to_neurons(gt != 0, interior=1, per_slice=True), kind="instance")
    assert "warnings" not in fixed and fixed["volume"]["n_gt"] > 1 and not caplog.records
    assert "warnings" not in evaluate(cells, cells, kind="instance")  # real instances: many values
    assert "warnings" not in evaluate((gt == 0).astype(np.uint8), (gt == 0).astype(np.uint8), kind="semantic")
