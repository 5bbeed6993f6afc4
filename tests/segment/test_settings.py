"""SegmentOptions: a pydantic model whose every problem is one InputError line naming the flag or field."""

from __future__ import annotations

import numpy as np
import pytest

from slicewise.errors import InputError
from slicewise.segment import SegmentOptions
from slicewise.segment.settings import MODES, USES, segment_options


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"mode": "grow"}, r"^mode 'grow' is unknown: use one of cc, watershed$"),
        ({"mode": "watershed", "use": "edges"}, r"^use 'edges' is unknown: use one of boundary, distance$"),
        ({"min_size": -1}, r"^--min-size -1 must be >= 0 voxels$"),
        ({"min_distance": 0, "mode": "watershed", "use": "distance"}, r"^--min-distance 0 must be >= 1 pixel$"),
        ({"connectivity": 4}, r"^--connectivity 4 must be 1 \(faces\)"),
        ({"foreground_threshold": float("nan")}, r"^--foreground-threshold nan must be a probability in \[0, 1\]$"),
        ({"mode": "watershed", "seed_threshold": 2.0}, r"^--seed-threshold 2.0 must be a probability"),
        ({"mode": "watershed", "use": "distance", "seed_threshold": -1.0}, r"must be a distance >= 0"),
        ({"mode": "cc", "boundary_threshold": 0.3}, r"^--boundary-threshold 0.3 does nothing with --mode cc"),
        (
            {"min_size": "many"},
            r"^segment options: bad value for 'min_size' \('many'\): Input should be a valid integer",
        ),
        (
            {"min_sise": 3},
            r"^segment options: unknown key 'min_sise' \(did you mean 'min_size'\?\); allowed keys: mode, use, ",
        ),
    ],
)
def test_every_problem_is_one_line_when_the_options_are_made(kwargs, match):
    with pytest.raises(InputError, match=match) as err:
        SegmentOptions(**kwargs)
    assert "\n" not in str(err.value)


def test_overrides_apply_on_top_of_options_and_numpy_scalars_are_accepted():
    base = SegmentOptions(mode="watershed", min_size=4)
    opts = segment_options(base, min_size=np.int64(1), foreground_threshold=np.float32(0.25))
    assert (opts.mode, opts.min_size, opts.foreground_threshold) == ("watershed", 1, 0.25)
    assert segment_options() == SegmentOptions() and base.min_size == 4  # frozen: the base is unchanged
    with pytest.raises(InputError, match="--min-distance 5 does nothing with --mode watershed --use boundary"):
        segment_options(base, min_distance=5)


def test_modes_and_uses_come_from_the_field_types():
    assert MODES == ("cc", "watershed") and USES == ("boundary", "distance")
