"""The one intensity check (``check_raw``): dtypes, NaN/Inf, float outside [0, 1], crushed integers."""

from __future__ import annotations

import numpy as np
import pytest

from slicewise.data.io import Volume, check_block, check_raw
from slicewise.errors import InputError

RNG = np.random.default_rng(0)
BYTES = RNG.integers(0, 256, (3, 8, 8))


def _msg(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert msg and "\n" not in msg and ": " in msg  # "<problem>: <fix>" on one line
    return msg


@pytest.mark.parametrize(
    "array, match",
    [
        (BYTES.astype(np.complex64), "dtype complex64: expected integer or float intensities"),
        (BYTES.astype(np.complex128), "dtype complex128"),
        (BYTES.astype("U3"), "dtype <U3"),
        (BYTES.astype("m8[s]"), "dtype timedelta64"),
        (BYTES.astype(np.longdouble), "floats wider than 64 bit are not supported: save it as float32"),
    ],
)
def test_non_real_dtypes_are_refused(array, match):
    with pytest.raises(InputError, match=match) as err:
        check_raw(array)
    assert "save it as" in _msg(err)


@pytest.mark.parametrize(
    "array, match",
    [
        (BYTES.astype(np.int64), r"int64 with values \d+\.\.\d+, under 1/256 of the int64 maximum"),
        (BYTES.astype(np.int32), "int32 with values"),
        (BYTES.astype(np.uint32), "uint32 with values"),
        (BYTES.astype(np.uint64), "uint64 with values"),
        (BYTES.astype(np.int16) - 1, r"int16 with negative values \(min -1\)"),
        (BYTES.astype(np.int8) - 1, "int8 with negative values"),
        (BYTES.astype(np.int64) - 3, "int64 with negative values"),
        (BYTES.astype(np.float32), r"float with values 0\.\.\d+ outside \[0, 1\]"),
        (BYTES.astype(np.float64) / 255 - 0.5, r"outside \[0, 1\]"),
    ],
)
def test_values_the_convention_would_crush_are_refused(array, match):
    with pytest.raises(InputError, match=match) as err:
        check_raw(array)
    msg = _msg(err)
    assert "--normalize" not in msg  # no option named unless the caller offers one
    assert "uint8" in msg  # the fix converts the file


def test_the_fix_names_the_cast_that_keeps_the_values():
    with pytest.raises(InputError, match="save it as uint8$"):
        check_raw(np.full((2, 4, 4), 255, np.int64))
    with pytest.raises(InputError, match="save it as uint16$"):
        check_raw(np.full((2, 4, 4), 4095, np.int64))
    with pytest.raises(InputError, match=r"rescale it to uint16 \(0\.\.65535\)$"):
        check_raw(np.full((2, 4, 4), 70000, np.int64))


@pytest.mark.parametrize(
    "array",
    [
        BYTES.astype(np.uint8),
        BYTES.astype(np.uint16),
        BYTES.astype(np.uint16) // 64,  # uint16 is never range-checked
        BYTES > 128,
        (BYTES // 2).astype(np.int8),  # int8 0..127 reaches 1/256 of 127 with any value >= 1
        BYTES.astype(np.int16) * 128,  # 0..32640: the full int16 range
        np.full((2, 4, 4), 2**40, np.int64),  # >= 2^63 / 256 is not: refused below
        BYTES.astype(np.float32) / 255,
        np.array([[[0.0, 1.0 + 5e-7, -5e-7]]], np.float32),  # round-off tolerated
    ],
)
def test_intensities_in_the_convention_pass(array):
    if array.dtype == np.int64:
        with pytest.raises(InputError, match="under 1/256"):
            check_raw(array)
        array = np.full((2, 4, 4), 2**56, np.int64)  # exactly 1/128 of the int64 maximum: accepted
    assert check_raw(array).shape == array.shape


def test_normalization_lifts_the_value_rules_but_never_the_dtype_or_nan_rules():
    for array in (BYTES.astype(np.int64) - 9, BYTES.astype(np.float32) * 3):
        option = "--normalize percentile"
        with pytest.raises(InputError, match=f"or pass {option} to map its 0.1–99.9th percentiles") as err:
            check_raw(array, option=option)
        _msg(err)
        assert check_raw(array, normalized=True).shape == array.shape
    nan = BYTES.astype(np.float32) / 255
    nan[2, 1, 1] = np.nan
    with pytest.raises(InputError, match=r"NaN or Inf values \(first at slice z=2\)"):
        check_raw(nan, normalized=True)
    with pytest.raises(InputError, match="complex64"):
        check_raw(BYTES.astype(np.complex64), normalized=True)


class _Counting:
    """An array-like that counts its reads."""

    def __init__(self, array: np.ndarray) -> None:
        self.array, self.shape, self.dtype, self.reads = array, array.shape, array.dtype, 0

    def __getitem__(self, key):
        self.reads += 1
        return self.array[key]


def test_per_block_callers_read_only_for_wide_integers_and_passes_are_remembered():
    for dtype in (np.uint8, np.uint16, np.float32, bool):
        src = _Counting(BYTES.astype(dtype) if dtype != np.float32 else BYTES / np.float32(255))
        check_raw(Volume(src), per_block=True)
        assert src.reads == 0, dtype  # every block is checked as it is read instead
        check_raw(Volume(src), per_block=False)
        assert (src.reads > 0) == (dtype == np.float32), dtype  # no uint8/uint16/bool value can be refused
    wide = _Counting(BYTES.astype(np.int64) * 2**55)
    vol = Volume(wide)
    check_raw(vol, per_block=True)
    assert wide.reads > 0
    reads = wide.reads
    check_raw(vol, per_block=True)
    assert wide.reads == reads  # remembered on the Volume
    with pytest.raises(InputError, match="under 1/256"):
        check_raw(Volume(_Counting(BYTES.astype(np.int64))), per_block=True)


def test_check_block_decides_what_one_block_can():
    check_block(np.zeros((2, 4, 4), np.int64), "block")  # a dark block of a wide-integer volume is fine on its own
    with pytest.raises(InputError, match="block is int64 with negative values"):
        check_block(np.full((2, 4, 4), -1, np.int64), "block")
    with pytest.raises(InputError, match="block contains NaN or Inf"):
        check_block(np.full((2, 4, 4), np.inf, np.float32), "block")
    with pytest.raises(InputError, match="outside"):
        check_block(np.full((2, 4, 4), 2.0, np.float32), "block")
    with pytest.raises(InputError, match="complex"):
        check_block(np.zeros((2, 4, 4), np.complex64), "block")
    check_block(np.full((2, 4, 4), 2.0, np.float32), "block", normalized=True)
