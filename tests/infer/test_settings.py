"""Prediction settings: a pydantic model whose every problem is one InputError line in the configs' style."""

from __future__ import annotations

import pytest

from slicewise.errors import InputError
from slicewise.infer.settings import PredictSettings


def test_values_are_parsed_into_one_form() -> None:
    s = PredictSettings(tile="128,64", block="4x32x32", roi="1:3", normalize="none", compile="false", dask=" local:2 ")
    assert s.tile == (128, 64) and s.block == (4, 32, 32) and s.normalize is None and s.compile is False
    assert s.roi == (slice(1, 3), slice(None), slice(None)) and s.dask == "local:2"
    assert PredictSettings(tile=96).tile == (96, 96) and PredictSettings(roi=(slice(0, 2),)).roi[1] == slice(None)


@pytest.mark.parametrize(
    "values, expected",
    [
        (dict(overlap=1.5), "prediction settings: bad value for 'overlap' (1.5): tile overlap 1.5 must be in [0, 1)"),
        (dict(tiles=64), "prediction settings: unknown key 'tiles' (did you mean 'tile'?)"),
        (dict(k=4), "bad value for 'k' (4): k=4 slices per stack must be odd"),
        (dict(cuda_graphs="yes"), "bad value for 'cuda_graphs' ('yes'): cuda_graphs='yes' must be true or false"),
        (dict(output_kind="labels", dtype="uint8"), "prediction settings: --dtype uint8 sets how probabilities"),
        (dict(dask="local:0"), "bad value for 'dask' ('local:0'): --dask 'local:0': give local:N"),
    ],
)
def test_problems_are_one_line_errors_naming_the_setting(values, expected) -> None:
    with pytest.raises(InputError) as err:
        PredictSettings(**values)
    assert str(err.value).startswith(expected) or expected in str(err.value), str(err.value)
    assert "\n" not in str(err.value)


def test_replace_validates_the_copy_and_refuses_unknown_names() -> None:
    s = PredictSettings(tile=64)
    assert s.replace() is s and s.replace(overlap="0.5").overlap == 0.5 and s.replace(dz=2).tile == (64, 64)
    with pytest.raises(InputError, match="unknown prediction setting"):
        s.replace(chunk=3)
    with pytest.raises(InputError, match="'batch_size'"):
        s.replace(batch_size=0)
    with pytest.raises(ValueError, match="frozen"):
        s.tile = (32, 32)  # type: ignore[misc]
