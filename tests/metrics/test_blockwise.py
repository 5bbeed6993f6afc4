"""Block-wise evaluate: every metric equals the one-block (in-memory) value; reads once; ranges; dask; label dtypes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slicewise.errors import InputError
from slicewise.metrics import evaluate, format_table
from slicewise.metrics.contingency import contingency_table


def _flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        elif isinstance(v, list) and v and isinstance(v[0], dict):
            for i, row in enumerate(v):
                out.update(_flat(row, f"{prefix}{k}[{i}]."))
        else:
            out[prefix + k] = v
    return out


def _instances(shape, n, seed):
    rng = np.random.default_rng(seed)
    gt = rng.integers(0, n, shape)
    pred = gt.copy()
    flip = rng.random(shape) < 0.2
    pred[flip] = rng.integers(0, n + 2, int(flip.sum()))
    prob = rng.random(shape).astype(np.float32)
    return pred, gt, prob


@settings(max_examples=25, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 5), st.integers(1, 9), st.integers(1, 9)),
    block=st.tuples(st.integers(1, 4), st.integers(1, 6), st.integers(1, 6)),
    kind=st.sampled_from(["instance", "semantic"]),
    per_slice=st.booleans(),
    with_prob=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_every_metric_equals_the_in_memory_value(shape, block, kind, per_slice, with_prob, seed):
    pred, gt, prob = _instances(shape, 5, seed)
    prob = prob if (with_prob and kind == "instance") else None
    whole = evaluate(pred, gt, kind=kind, prob=prob, per_slice=per_slice, block=shape)
    blocks = evaluate(pred, gt, kind=kind, prob=prob, per_slice=per_slice, block=block)
    assert _flat(blocks) == _flat(whole)  # exactly, every number


def test_matches_the_whole_volume_table_and_skimage():
    from skimage.metrics import adapted_rand_error, variation_of_information

    pred, gt, _ = _instances((4, 20, 20), 7, 3)
    v = evaluate(pred, gt, kind="instance", block=(2, 7, 6), ignore_gt_zero=False)["volume"]
    are = adapted_rand_error(gt, pred, ignore_labels=())[0]
    split, merge = variation_of_information(gt, pred)
    assert v["are"] == pytest.approx(are, abs=1e-12)
    assert v["voi_split"] == pytest.approx(split, abs=1e-12) and v["voi_merge"] == pytest.approx(merge, abs=1e-12)
    t = contingency_table(pred, gt, block=(3, 5, 7))
    ref = contingency_table(pred, gt)
    assert (t.counts != ref.counts).nnz == 0 and (t.gt_ids == ref.gt_ids).all()


class Counted:
    """A lazy volume that counts voxels read and refuses to be turned into an array whole."""

    def __init__(self, a):
        self.a, self.shape, self.dtype, self.read, self.largest = a, a.shape, a.dtype, 0, 0

    def __getitem__(self, key):
        out = self.a[key]
        self.read += out.size
        self.largest = max(self.largest, out.size)
        return out

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole volume was read")


def test_each_volume_is_read_once_block_by_block():
    pred, gt, prob = _instances((6, 24, 24), 5, 1)
    p, g, f = Counted(pred), Counted(gt), Counted(prob)
    res = evaluate(p, g, kind="instance", prob=f, per_slice=True, block=(2, 8, 8))
    assert p.read == g.read == f.read == pred.size  # once each, never twice
    assert max(p.largest, g.largest, f.largest) == 2 * 8 * 8
    assert _flat(res) == _flat(evaluate(pred, gt, kind="instance", prob=prob, per_slice=True))


@pytest.mark.parametrize("dask", ["threads", "threads:2", "local:2"])
def test_dask_gives_the_same_result(dask, tmp_path):
    import tifffile

    from slicewise.data.io import write_volume

    pred, gt, prob = _instances((4, 16, 16), 6, 5)
    write_volume(tmp_path / "p.zarr", pred.astype(np.int32))
    write_volume(tmp_path / "g.h5", gt.astype(np.int32))
    tifffile.imwrite(tmp_path / "fg.tif", prob)  # a probability file travels to the workers as its path
    ref = evaluate(pred, gt, kind="instance", per_slice=True, prob=prob)
    got = evaluate(
        str(tmp_path / "p.zarr"),
        str(tmp_path / "g.h5"),
        kind="instance",
        per_slice=True,
        block=(2, 8, 8),
        dask=dask,
        prob=str(tmp_path / "fg.tif"),
    )
    assert _flat(got) == _flat(ref)


def test_bad_dask_address_is_one_line():
    a = np.zeros((1, 2, 2), int)
    for addr, match in (("local:0", "local:N"), ("mars", "local:N"), ("threads:0", "threads:N")):
        with pytest.raises(InputError, match=match):
            evaluate(a, a, dask=addr)


def test_uint64_ids_that_fit_int64_are_accepted_others_refused():
    gt = np.array([[[0, 1, 2**40, 2**40]]], np.uint64)
    pred = np.array([[[0, 1, 7, 7]]], np.uint64)
    v = evaluate(pred, gt, kind="instance")["volume"]
    assert v["are"] == 0.0 and v["n_gt"] == 2
    gt[0, 0, 0] = 2**63
    with pytest.raises(InputError, match="does not fit int64") as err:
        evaluate(pred, gt, kind="instance")
    assert "\n" not in str(err.value)


def test_negative_labels_are_refused():
    with pytest.raises(InputError, match="negative") as err:
        evaluate(np.array([[[-1, 2]]]), np.array([[[1, 2]]]), kind="instance")
    assert "\n" not in str(err.value)


def test_perfect_voi_is_zero_not_negative_zero():
    a = np.ones((2, 4, 4), np.int32)
    res = evaluate(a, a, kind="instance")
    assert math.copysign(1, res["volume"]["voi"]) == 1.0 and math.copysign(1, res["volume"]["voi_split"]) == 1.0
    assert "-0.0" not in format_table(res) and "-0.0" not in json.dumps(res)


def test_roi_scores_the_box_of_both_maps():
    pred, gt, prob = _instances((8, 20, 20), 5, 9)
    roi = (slice(2, 5), slice(4, 16), slice(None))
    got = evaluate(pred, gt, kind="instance", prob=prob, roi=roi, per_slice=True, block=(2, 5, 5))
    ref = evaluate(pred[2:5, 4:16], gt[2:5, 4:16], kind="instance", prob=prob[2:5, 4:16], per_slice=True)
    assert [r["z"] for r in got["per_slice"]] == [2, 3, 4] and got["offset"] == [2, 4, 0]
    for r in ref["per_slice"]:
        r["z"] += 2
    got.pop("offset")
    assert _flat(got) == _flat(ref)


def test_prediction_with_offset_is_aligned_with_the_ground_truth(tmp_path):
    import zarr

    from slicewise.data.io import create_zarr

    pred, gt, prob = _instances((8, 20, 20), 5, 2)
    arr = create_zarr(tmp_path / "lab.zarr", (3, 20, 12), np.int32)
    arr[...] = pred[4:7, :, 5:17]
    arr.attrs["offset"] = [4, 0, 5]
    g = zarr.open_group(str(tmp_path / "prob.zarr"), mode="w", zarr_format=2)
    g.create_array("probabilities", data=np.stack([1 - prob, prob]))
    g.attrs["channels"] = ["class0", "class1"]
    got = evaluate(str(tmp_path / "lab.zarr"), gt, kind="instance", prob=str(tmp_path / "prob.zarr"), block=(2, 6, 6))
    ref = evaluate(pred[4:7, :, 5:17], gt[4:7, :, 5:17], kind="instance", prob=prob[4:7, :, 5:17])
    assert got.pop("offset") == [4, 0, 5]
    assert got["volume"] == pytest.approx(ref["volume"], abs=1e-6)
    sub = evaluate(str(tmp_path / "lab.zarr"), gt, kind="instance", roi=(slice(5, 7), slice(None), slice(6, 10)))
    assert sub["volume"] == evaluate(pred[5:7, :, 6:10], gt[5:7, :, 6:10], kind="instance")["volume"]
    with pytest.raises(InputError, match="not inside the prediction"):
        evaluate(str(tmp_path / "lab.zarr"), gt, kind="instance", roi=(slice(0, 5), slice(None), slice(None)))


def test_probability_files_in_every_predict_layout_give_the_array_scores(tmp_path):
    import tifffile

    pred, gt, prob = _instances((3, 12, 12), 4, 6)
    two = np.stack([1 - prob, prob])
    ref = evaluate(pred, gt, kind="instance", prob=two)["volume"]
    tifffile.imwrite(
        tmp_path / "cl.tif", np.moveaxis(two, 0, -1), metadata={"axes": "ZYXC"}
    )  # channel-last, as predict writes TIFF
    tifffile.imwrite(tmp_path / "fg.tif", prob)
    for f in ("cl.tif", "fg.tif"):
        assert evaluate(pred, gt, kind="instance", prob=str(tmp_path / f), block=(2, 5, 5))["volume"] == pytest.approx(
            ref, abs=1e-7
        ), f
