"""Prediction applies the one intensity rule: non-real dtypes and crushed integers are refused before any tile is
computed, with --normalize percentile as the fix (sweep findings 3a and 4)."""

from __future__ import annotations

import numpy as np
import pytest

from slicewise.data.io import Volume
from slicewise.errors import InputError
from slicewise.infer.blocks import plan_blocks, predict_block
from slicewise.infer.predict import make_plan, predict, predict_to

KW = dict(device="cpu", progress=False, tile=16)


def _raw() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (5, 16, 24)).astype(np.uint8)


@pytest.mark.parametrize(
    "array, match",
    [
        (_raw().astype(np.complex64), "dtype complex64: expected integer or float intensities"),
        (
            _raw().astype(np.int64),
            "int64 with values .* under 1/256 .*: save it as uint8, or pass --normalize percentile",
        ),
        (_raw().astype(np.uint32), "uint32 with values"),
        (_raw().astype(np.int16) - 1, r"int16 with negative values \(min -1\).*--normalize percentile"),
    ],
)
def test_refused_before_any_tile_is_computed_and_nothing_is_left(stub, tmp_path, array, match):
    model = stub()
    with pytest.raises(InputError, match=match) as err:
        predict(model, array, **KW)
    assert "\n" not in str(err.value) and model.calls == 0
    with pytest.raises(InputError, match=match):
        predict_to(model, array, tmp_path / "p.zarr", block=(2, 16, 24), **KW)
    assert model.calls == 0 and sorted(p.name for p in tmp_path.iterdir()) == []


def test_complex_input_is_refused_even_with_percentile_normalization(stub):
    with pytest.raises(InputError, match="complex64"):
        predict(stub(), _raw().astype(np.complex64), normalize="percentile", **KW)


def test_percentile_normalization_takes_wide_and_signed_integers(stub):
    model = stub(kind="plus_one")
    ref = predict(model, _raw(), normalize="percentile", **KW)
    for array in (_raw().astype(np.int64), _raw().astype(np.int16) - 100, _raw().astype(np.uint64) * 2**40):
        np.testing.assert_allclose(predict(model, array, normalize="percentile", **KW), ref, rtol=0, atol=1e-5)


def test_integers_in_the_convention_are_divided_by_their_dtype_maximum(stub):
    model = stub(kind="plus_one")
    full = _raw().astype(np.int16) * 128  # 0..32640: reaches the int16 range
    np.testing.assert_allclose(predict(model, full, **KW)[2] - 1, full / np.float32(32767), rtol=0, atol=2e-6)


def test_predict_block_checks_a_volume_once(stub):
    model = stub()
    vol = Volume(_raw().astype(np.int64))
    plan = make_plan(model, vol.shape, **{k: v for k, v in KW.items() if k != "progress"})
    with pytest.raises(InputError, match="under 1/256"):
        predict_block(model, vol, plan_blocks(vol.shape, plan.block)[0], plan)
    assert model.calls == 0
    ok = Volume(_raw().astype(np.int64) * 2**55)  # 0..255·2^55: reaches 1/256 of the int64 maximum
    predict_block(model, ok, plan_blocks(ok.shape, plan.block)[0], plan)
    assert ok.intensity_checks  # the pass is remembered: dask workers check their volume once
