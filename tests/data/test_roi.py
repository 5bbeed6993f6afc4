"""--z / --roi parsing: half-open numpy-style ranges, one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from slicewise.data.roi import combine, parse_block, parse_halo, parse_range, parse_roi, resolve_roi, roi_shape
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


@pytest.mark.parametrize("bad", ["64x", "64,", ",64", "a,b", "64,,64,64", "x64", "", "6.5", "64x64x", " , "])
def test_parse_sizes_refuses_every_malformed_item(bad):
    from slicewise.data.roi import parse_sizes

    with pytest.raises(InputError, match=r"--block .* is not one or 3 integers: write e\.g\. 16,256,256"):
        parse_sizes(bad, 3, "--block", "16,256,256")


def test_parse_sizes_takes_whole_numbers_only():
    from slicewise.data.roi import parse_sizes

    assert parse_sizes("64", 3, "--block", "e.g.") == (64, 64, 64)  # one value: every axis (documented)
    assert parse_sizes(" 8 , 16 ,32", 3, "--block", "e.g.") == (8, 16, 32)
    assert parse_sizes("8X16x32", 3, "--block", "e.g.") == (8, 16, 32)
    assert parse_sizes(np.int64(4), 2, "--tile", "e.g.") == (4, 4) and parse_sizes(64.0, 1, "k", "3") == (64,)
    for bad in (6.5, True, float("nan"), float("inf"), [1.5, 2, 3]):
        with pytest.raises(InputError, match="integers"):
            parse_sizes(bad, 3, "--block", "16,256,256")


@pytest.mark.parametrize(
    "z, roi, match",
    [
        ("5:2", None, r"^--z 5:2: the range is empty .* give e\.g\. 2:5$"),
        ("-2:-5", None, r"^--z -2:-5: the range is empty"),
        (None, "0:4,9:3", r"^--roi 9:3: the range is empty .* 3:9$"),
        (None, "4:4", r"^--roi 4:4: the range is empty .* 4:5$"),
    ],
)
def test_ranges_empty_for_any_volume_name_the_option_typed(z, roi, match):
    with pytest.raises(InputError, match=match):
        combine(z=z, roi=roi)


def test_ranges_empty_for_this_volume_name_the_options_of_that_axis():
    with pytest.raises(InputError, match=r"^--z / --roi: the z range 10:20 is empty for a volume of z-size 8"):
        resolve_roi(combine(z="10:20"), (8, 64, 64))
    with pytest.raises(InputError, match=r"^--roi: the y range 70: is empty for a volume of y-size 64"):
        resolve_roi(combine(roi=":,70:"), (8, 64, 64))
    with pytest.raises(InputError, match=r"^--train-z: the z range 5:-4"):
        resolve_roi((slice(5, -4),), (8, 1, 1), what="--train-z")


def test_ranges_beyond_the_volume_are_clipped_with_one_warning(caplog):
    import logging

    with caplog.at_level(logging.WARNING, logger="slicewise.data.roi"):
        assert resolve_roi(combine(z="0:101"), (8, 64, 64)) == (slice(0, 8), slice(0, 64), slice(0, 64))
        assert resolve_roi(parse_roi("0:4,-640:,0:64"), (8, 64, 64))[1] == slice(0, 64)
        assert resolve_roi(parse_roi("1:-1,2:64"), (8, 64, 64)) == (slice(1, 7), slice(2, 64), slice(0, 64))
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "--z / --roi: the z range 0:101 reaches beyond the volume (z-size 8): clipped to 0:8",
        "--roi: the y range -640: reaches beyond the volume (y-size 64): clipped to 0:64",
    ]


def test_parse_block_and_halo():
    assert parse_block("2,16,16") == (2, 16, 16) and parse_halo("3") == (3, 3, 3)
    for bad in ("2,16", "0,1,1", "a,b,c"):
        with pytest.raises(InputError, match="--block"):
            parse_block(bad)
    with pytest.raises(InputError, match="--halo"):
        parse_halo("1,-2,1")
