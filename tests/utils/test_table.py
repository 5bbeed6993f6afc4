"""The one number format of tables and legends, and CSV export."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from slicewise.utils.table import num, write_csv


@pytest.mark.parametrize(
    "v, text",
    [
        (1.4e-05, "1.4e-05"),
        (0.0, "0"),
        (-0.0, "0"),
        (0.55234, "0.5523"),
        (123.456, "123.5"),
        (12345.6, "12346"),
        (3, "3"),
        (np.int64(7), "7"),
        (float("nan"), "n/a"),
        (None, "n/a"),
        (float("inf"), "inf"),
        (True, "True"),
        (np.float32(0.25), "0.25"),
    ],
)
def test_num_examples(v, text):
    assert num(v) == text


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6))
def test_num_keeps_four_significant_digits_and_never_hides_a_nonzero(v: float) -> None:
    text = num(v)
    back = float(text)
    assert back == pytest.approx(v, rel=5e-4, abs=0.5 if abs(v) >= 1e4 else 0.0)
    if v != 0.0:
        assert back != 0.0
    assert "-0" != text


def test_write_csv_round_trips(tmp_path):
    rows = [{"a": 1, "b": 0.123456789, "c": None}, {"a": 2, "b": float("nan"), "c": "x"}]
    assert write_csv(tmp_path / "t.csv", rows) == "t.csv"
    back = list(csv.DictReader((tmp_path / "t.csv").open()))
    assert [r["a"] for r in back] == ["1", "2"] and float(back[0]["b"]) == 0.123456789
    assert back[0]["c"] == "" and back[1]["b"] == "" and not math.isnan(float(back[0]["b"]))
