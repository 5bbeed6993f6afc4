"""The membrane → neuron step: connected components of membrane maps, and evaluate(components=...) with label maps."""

from __future__ import annotations

import numpy as np
import pytest

from slicewise.errors import InputError
from slicewise.metrics import evaluate, membranes_to_neurons


def test_membranes_to_neurons_isbi_convention():
    lab = np.full((2, 5, 5), 255, np.uint8)
    lab[:, 2, :] = 0  # a membrane splits each slice into two cells
    n = membranes_to_neurons(lab, interior=255)
    assert n[0, 2].max() == 0
    assert len(np.unique(n[0])) == 3 and len(np.unique(n)) == 5  # ids unique across slices
    assert len(np.unique(membranes_to_neurons(lab, per_slice=False))) == 3
    r = evaluate(n, n, kind="instance")["volume"]
    assert r["are"] == 0.0 and r["ap"] == 1.0
    filled = membranes_to_neurons(lab, interior=255, fill=True)
    assert filled.min() > 0 and np.array_equal(filled[lab == 255], n[lab == 255])
    lab[:, 3, :] = 0  # a thicker predicted membrane: unfilled, its 0 voxels form one segment (a false merge)
    pred = membranes_to_neurons(lab, interior=255)
    assert evaluate(pred, n, kind="instance")["volume"]["rand_precision"] < 1.0
    assert (
        evaluate(membranes_to_neurons(lab, interior=255, fill=True), n, kind="instance")["volume"]["are"]
        < evaluate(pred, n, kind="instance")["volume"]["are"]
    )


def _membranes() -> tuple[np.ndarray, np.ndarray]:
    """A 0/255 membrane map (ground truth) and a prediction with a thicker membrane."""
    gt = np.full((2, 9, 9), 255, np.uint8)
    gt[:, 4, :] = 0
    pred = gt.copy()
    pred[:, 5, :] = 0
    return pred, gt


def test_components_in_evaluate_equal_the_components_given_as_labels():
    pred, gt = _membranes()
    for fill in (False, True):
        got = evaluate(pred, gt, kind="instance", components="both", fill=fill)
        ref = evaluate(membranes_to_neurons(pred, fill=fill), membranes_to_neurons(gt), kind="instance")
        assert got["volume"] == ref["volume"]
    only_gt = evaluate(membranes_to_neurons(pred), gt, kind="instance", components="gt")["volume"]
    assert only_gt == evaluate(membranes_to_neurons(pred), membranes_to_neurons(gt), kind="instance")["volume"]


def test_the_label_map_applies_before_the_components():
    pred, gt = _membranes()
    inverted = {0: 1, 255: 0}  # the membrane rows become the regions
    got = evaluate(pred, gt, kind="instance", components="both", label_map=inverted, pred_label_map=inverted)
    ref = evaluate(membranes_to_neurons(pred == 0), membranes_to_neurons(gt == 0), kind="instance")
    assert got["volume"] == ref["volume"] and got["volume"]["n_gt"] == 2  # one membrane row per slice
    assert got["settings"]["label_map"] == {"0": 1, "255": 0}


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"components": "yes", "kind": "instance"}, "gt, pred, both"),
        ({"fill": True, "kind": "instance"}, "--components"),
        ({"components": "gt", "fill": True, "kind": "instance"}, "--components pred"),
        ({"components": "both"}, "--kind instance"),
    ],
)
def test_components_settings_that_mean_nothing_are_refused_in_one_line(kwargs, match):
    pred, gt = _membranes()
    with pytest.raises(InputError, match=match) as err:
        evaluate(pred, gt, **kwargs)
    assert "\n" not in str(err.value)
