"""Lazy array views: the one base class every windowed, mapped, permuted or channel-last view derives from.

A view has a ``shape`` and a ``dtype`` and reads only what is indexed. Indexing is numpy's basic indexing
(ints, slices with any step, one ``...``) plus an integer list or boolean mask on the first axis.
:func:`normalize_key` is the one place that turns such a key into one entry per axis; a subclass only
implements :meth:`LazyView._read`, which receives in-range non-negative ints and slices with concrete
``start <= stop`` and a positive step (negative steps are read forwards and flipped here; empty selections
never reach ``_read``).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import numpy as np

#: a normalized key: one entry per axis, an int in range or a slice with concrete bounds and step > 0.
Key = tuple[int | slice, ...]


def normalize_key(key: Any, shape: Sequence[int], what: str = "array") -> tuple[Any, ...]:
    """``key`` → one entry per axis of ``shape``: ``...`` expanded, missing axes filled with ``slice(None)``.

    Refuses ``None`` (np.newaxis), more than one ellipsis, too many indices and lists/arrays on any axis but
    the first, each with an ``IndexError`` naming ``what``.
    """
    ndim = len(shape)
    if not isinstance(key, tuple):
        key = (key,)
    if any(k is None for k in key):
        raise IndexError(f"{what} indexing does not support np.newaxis: index the result instead")
    if any(isinstance(k, (list, np.ndarray)) for k in key[1:]):
        raise IndexError(f"{what} supports integer lists/arrays on the first axis only")
    n_ell = sum(k is Ellipsis for k in key)
    if n_ell > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    if n_ell:
        i = next(j for j, k in enumerate(key) if k is Ellipsis)
        key = key[:i] + (slice(None),) * (ndim - len(key) + 1) + key[i + 1 :]
    if len(key) > ndim:
        raise IndexError(f"too many indices for a {ndim}-d {what}: {len(key)} were given")
    return key + (slice(None),) * (ndim - len(key))


def resolve_key(key: tuple[Any, ...], shape: Sequence[int]) -> tuple[Key, list[int]]:
    """A normalized key of basic entries → (``_read`` key, output axes to flip): ints made non-negative and
    bounds-checked, slices made concrete with a positive step."""
    pos: list[int | slice] = []
    flip: list[int] = []
    out_axis = 0
    for k, n in zip(key, shape):
        if isinstance(k, slice):
            rng = range(*k.indices(int(n)))
            if rng.step < 0 and len(rng) > 0:
                pos.append(slice(rng[-1], rng[0] + 1, -rng.step))
                flip.append(out_axis)
            else:
                pos.append(slice(rng.start, rng.stop, rng.step) if len(rng) else slice(0, 0, 1))
            out_axis += 1
        else:
            i = operator.index(k)
            if not -n <= i < n:
                raise IndexError(f"index {i} is out of bounds for axis of size {n}")
            pos.append(i % int(n))
    return tuple(pos), flip


class LazyView:
    """Base of every lazy array view. Subclasses set ``shape`` and ``dtype`` and implement :meth:`_read`."""

    shape: tuple[int, ...]
    dtype: np.dtype
    #: the name used in indexing errors
    what = "array"

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def __len__(self) -> int:
        return int(self.shape[0])

    def __getitem__(self, key: Any) -> np.ndarray:
        key = normalize_key(key, self.shape, self.what)
        if isinstance(key[0], (list, np.ndarray)):
            return self._take_first(np.asarray(key[0]), key[1:])
        pos, flip = resolve_key(key, self.shape)
        out_shape = [len(range(p.start, p.stop, p.step)) for p in pos if isinstance(p, slice)]
        if 0 in out_shape:
            return np.zeros(out_shape, self.dtype)
        out = np.asarray(self._read(pos))
        return np.flip(out, axis=flip) if flip else out

    def _take_first(self, index: np.ndarray, rest: tuple[Any, ...]) -> np.ndarray:
        """Integer list / boolean mask on the first axis: one read per selected index, stacked."""
        if index.dtype == bool:
            index = np.flatnonzero(index)
        parts = [self[(int(i), *rest)] for i in index.ravel()]
        if not parts:
            return np.zeros((0, *self[(0, *rest)].shape), self.dtype)
        return np.stack(parts).reshape(*index.shape, *parts[0].shape)

    def _read(self, key: Key) -> np.ndarray:
        """The values at ``key`` (one in-range entry per axis, see the module docstring)."""
        raise NotImplementedError

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        a = self[...]
        return a.astype(dtype, copy=False) if dtype is not None else a

    def numpy(self) -> np.ndarray:
        """The whole view as a numpy array (reads everything)."""
        return self[...]
