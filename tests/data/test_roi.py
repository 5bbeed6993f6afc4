"""--z / --roi parsing: half-open numpy-style ranges, one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from slicewise.data.roi import combine, parse_range, parse_roi, resolve_roi, roi_shape
from slicewise.errors import InputError


def test_parse_range_and_roi():
    assert parse_range("16:20") == slice(16, 20)
    assert parse_range(":8") == slice(None, 8)
    assert parse_range(None) == slice(None)
    assert parse_roi("0:4,10:20") == (slice(0, 4), slice(10, 20), slice(None))
    assert combine(z="2:5", roi=",1:3,") == (slice(2, 5), slice(1, 3), slice(None))


@pytest.mark.parametrize("text", ["16", "1:2:3", "a:b", "1.5:3"])
def test_bad_ranges_are_one_line_errors(text):
    with pytest.raises(InputError, match="START:STOP"):
        parse_range(text)


def test_empty_or_contradicting_ranges_are_refused():
    with pytest.raises(InputError, match="empty"):
        resolve_roi(parse_roi("5:5"), (10, 8, 8))
    with pytest.raises(InputError, match="at most three"):
        parse_roi("1:2,1:2,1:2,1:2")
    with pytest.raises(InputError, match="different z ranges"):
        combine(z="0:2", roi="1:3")


@given(st.integers(1, 30), st.integers(-40, 40), st.integers(-40, 40))
def test_resolved_roi_indexes_like_numpy(n, a, b):
    arr = np.arange(n)
    try:
        r = resolve_roi((slice(a, b),), (n, 1, 1))
    except InputError:
        assert arr[a:b].size == 0
        return
    assert np.array_equal(arr[r[0]], arr[a:b]) and roi_shape(r)[0] == arr[a:b].size


def test_parse_sizes_one_parser_for_every_size_option():
    from slicewise.data.roi import parse_sizes

    assert parse_sizes("32,512,512", 3, "--block", "e.g.") == (32, 512, 512)
    assert parse_sizes("32x512x512", 3, "--block", "e.g.") == (32, 512, 512)
    assert parse_sizes(8, 3, "--halo", "e.g.", minimum=0) == (8, 8, 8)
    assert parse_sizes("0", 3, "--halo", "e.g.", minimum=0) == (0, 0, 0)
    for bad, minimum in (("0,1,1", 1), ("1,2", 1), ("a,b,c", 1), ("-1", 0)):
        with pytest.raises(InputError, match="--block"):
            parse_sizes(bad, 3, "--block", "16,256,256", minimum=minimum)
