"""``--label-map`` syntax (training's data.label_map) and its lazy application."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from slicewise.data.labelmap import MappedLabels, apply_label_map, parse_label_map
from slicewise.errors import InputError


@pytest.mark.parametrize("text", ["0:1,255:0", "0=1 255=0", "{0: 1, 255: 0}", " 0:1 , 255:0 "])
def test_parse_forms_agree(text):
    assert parse_label_map(text) == {0: 1, 255: 0}


@pytest.mark.parametrize(
    "text, match", [("0:a", "integer pair"), ("{oops", "RAW:CLASS"), ("0:1,0:2", "mapped twice"), (",", "no RAW:CLASS")]
)
def test_parse_refuses_in_one_line(text, match):
    with pytest.raises(InputError, match=match) as ex:
        parse_label_map(text)
    assert "\n" not in str(ex.value)


@given(st.dictionaries(st.integers(0, 300), st.integers(0, 5), min_size=1, max_size=6), st.integers(0, 2**31 - 1))
def test_mapped_labels_equal_the_direct_map(mapping, seed):
    rng = np.random.default_rng(seed)
    keys = np.array(sorted(mapping))
    lab = keys[rng.integers(0, len(keys), size=(2, 5, 6))]
    lazy = MappedLabels(lab, mapping)
    direct = np.vectorize(mapping.get)(lab)
    np.testing.assert_array_equal(lazy[...], direct)
    np.testing.assert_array_equal(lazy[1, 2:4], direct[1, 2:4])
    assert lazy.shape == lab.shape and lazy.dtype == np.int64


def test_unmapped_value_is_named():
    with pytest.raises(InputError, match=r"\[7\]"):
        apply_label_map(np.array([0, 7]), {0: 0})


@pytest.mark.parametrize("text", ["0:1,0:0,255:0", "0:1,0:1", "{0: 1, 0: 0}", "0=1 0=1"])
def test_a_raw_value_given_twice_is_refused_never_last_wins(text):
    with pytest.raises(InputError, match="value 0 is mapped twice"):
        parse_label_map(text)


def test_study_init_uses_the_one_parser():
    from slicewise.studies.init import parse_label_map as study_parse

    assert study_parse("0:1,255:0") == parse_label_map("0:1,255:0") == {0: 1, 255: 0}
    with pytest.raises(InputError, match="mapped twice"):
        study_parse("0:1,0:0")
