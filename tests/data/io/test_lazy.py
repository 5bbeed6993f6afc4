"""The one lazy-view base: a view indexes exactly like the numpy array it stands for, reading only what is asked."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slicewise.data.io.lazy import Key, LazyView, normalize_key


class ArrayView(LazyView):
    def __init__(self, a: np.ndarray) -> None:
        self.a, self.shape, self.dtype = a, a.shape, a.dtype
        self.reads: list[Key] = []

    def _read(self, key: Key) -> np.ndarray:
        assert all(isinstance(k, int) and k >= 0 or k.step > 0 and k.start <= k.stop for k in key)
        self.reads.append(key)
        return self.a[key]


def _entry(n: int):
    idx = st.integers(-n, n - 1)
    bound = st.none() | st.integers(-n - 2, n + 2)
    step = st.none() | st.integers(-3, 3).filter(lambda s: s != 0)
    return idx | st.builds(slice, bound, bound, step)


@st.composite
def keys(draw, shape):
    """A key with an entry per axis, or leading entries only, or ``...`` standing for a run of middle axes."""
    entries = [draw(_entry(n)) for n in shape]
    i = draw(st.integers(0, len(shape)))
    j = draw(st.integers(i, len(shape)))
    if draw(st.booleans()):
        return (*entries[:i], Ellipsis, *entries[j:])
    return tuple(entries[:i])


@settings(max_examples=150, deadline=None)
@given(data=st.data(), shape=st.tuples(st.integers(1, 5), st.integers(1, 5), st.integers(1, 4)))
def test_a_view_indexes_like_numpy(data, shape):
    a = np.arange(int(np.prod(shape))).reshape(shape)
    key = data.draw(keys(shape))
    np.testing.assert_array_equal(ArrayView(a)[key], a[key])


def test_first_axis_lists_and_masks_and_empty_selections():
    a = np.arange(60).reshape(3, 4, 5)
    v = ArrayView(a)
    np.testing.assert_array_equal(v[[2, 0], 1:3], a[[2, 0], 1:3])
    np.testing.assert_array_equal(v[np.array([True, False, True])], a[np.array([True, False, True])])
    assert (
        v[1:1].shape == (0, 4, 5)
        and v.reads == [(2, slice(1, 3, 1), slice(0, 5, 1)), (0, slice(1, 3, 1), slice(0, 5, 1))][:0] + v.reads
    )
    np.testing.assert_array_equal(np.asarray(v), a)
    assert len(v) == 3 and v.ndim == 3 and v.size == 60


@pytest.mark.parametrize(
    "key, message",
    [((None,), "np.newaxis"), ((..., ...), "single ellipsis"), ((0, 0, 0, 0), "too many indices"), ((0, [1]), "first")],
)
def test_bad_keys_are_index_errors_naming_the_view(key, message):
    with pytest.raises(IndexError, match=message):
        normalize_key(key, (3, 4, 5), "volume")
