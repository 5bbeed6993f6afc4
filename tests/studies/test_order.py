"""Natural order of study levels and labels (layers by stride, masks by level, numbers numerically)."""

from __future__ import annotations

import random

import pytest

from slicewise.studies.order import natural_sorted


@pytest.mark.parametrize(
    "expected, given",
    [
        (["enc_s2", "enc_s4", "enc_s8", "enc_s16", "enc_s32", "dec_s16", "dec_s8", "dec_s4", "dec_s2", "dec_s1"], ()),
        (["1111", "0111", "0011", "0001", "0000"], ()),
        (["0.05", "0.1", "0.25", "0.5", "1.0"], ()),
        (["weights", "before", "after"], ()),
        (["none", "brightness=0.1", "brightness=0.3", "contrast=0.5", "contrast=1.5", "gamma=0.5", "gamma=2"], ()),
        (["rgb", "repeat", "uniform", "mirror", "random"], ("rgb", "repeat", "uniform", "mirror", "random")),
    ],
)
def test_natural_order_whatever_the_input_order(expected: list[str], given: tuple[str, ...]) -> None:
    for seed in range(5):
        shuffled = expected[:]
        random.Random(seed).shuffle(shuffled)
        assert natural_sorted(shuffled, given) == expected
