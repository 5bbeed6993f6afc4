"""Synthetic EM phantom: topology of the ground truth, z-continuity, contrast, determinism.

Speed is not asserted here (a 32×256×256 phantom takes about 1.6 s on one core of the dev
machine); a timing belongs in a benchmark, not a test.
"""

from __future__ import annotations

import numpy as np
import pytest

from slicewise.data.synthetic import MEMBRANE, MITOCHONDRION, Phantom, make_phantom
from slicewise.errors import InputError


def test_shapes_and_dtypes(phantom: Phantom) -> None:
    assert (
        phantom.raw.shape == phantom.semantic.shape == phantom.cells.shape == phantom.mitochondria.shape == (16, 96, 96)
    )
    assert phantom.raw.dtype == np.uint8 and phantom.semantic.dtype == np.uint8
    assert phantom.cells.dtype == np.int32 and phantom.mitochondria.dtype == np.int32
    assert set(np.unique(phantom.semantic)) == {0, 1, 2}
    np.testing.assert_array_equal(phantom.boundary, phantom.semantic == MEMBRANE)


def test_membranes_separate_distinct_cells(phantom: Phantom) -> None:
    cells = phantom.cells
    assert np.array_equal(cells == 0, phantom.semantic == MEMBRANE)
    for axis in range(3):
        a = np.moveaxis(cells, axis, 0)
        lo, hi = a[:-1], a[1:]
        touching = (lo != 0) & (hi != 0) & (lo != hi)
        assert not touching.any(), f"different cells face-adjacent along axis {axis}"


def test_mitochondria_inside_one_cell_away_from_membranes(phantom: Phantom) -> None:
    mito, cells = phantom.mitochondria, phantom.cells
    ids = np.unique(mito[mito > 0])
    assert ids.size >= 5
    for i in ids:
        owners = np.unique(cells[mito == i])
        assert owners.size == 1 and owners[0] != 0, f"mitochondrion {i} lies in cells {owners}"
    assert np.array_equal(mito > 0, phantom.semantic == MITOCHONDRION)
    membrane = phantom.semantic == MEMBRANE
    for axis in range(3):
        m = np.moveaxis(mito > 0, axis, 0)
        b = np.moveaxis(membrane, axis, 0)
        assert not (m[:-1] & b[1:]).any() and not (m[1:] & b[:-1]).any(), "a mitochondrion touches a membrane"


def test_cells_persist_across_slices(phantom: Phantom) -> None:
    cells = phantom.cells
    persisted, dices = [], []
    for z in range(cells.shape[0] - 1):
        a, b = cells[z], cells[z + 1]
        ids_a = set(np.unique(a[a > 0]).tolist())
        ids_b = set(np.unique(b[b > 0]).tolist())
        persisted.append(len(ids_a & ids_b) / len(ids_a))
        for i in ids_a & ids_b:
            ma, mb = a == i, b == i
            dices.append(2 * np.count_nonzero(ma & mb) / (ma.sum() + mb.sum()))
    assert np.mean(persisted) > 0.8
    assert np.median(dices) > 0.7


def test_raw_darker_on_membranes_and_mitochondria(phantom: Phantom) -> None:
    raw, sem = phantom.raw.astype(float), phantom.semantic
    cyto = raw[sem == 0].mean()
    assert raw[sem == MEMBRANE].mean() < cyto - 50
    assert raw[sem == MITOCHONDRION].mean() < cyto - 25
    # noisy: the classes overlap in intensity, so the task needs context, not a threshold
    assert raw[sem == 0].std() > 10


def test_seed_determinism() -> None:
    a = make_phantom(shape=(6, 48, 48), seed=3)
    b = make_phantom(shape=(6, 48, 48), seed=3)
    c = make_phantom(shape=(6, 48, 48), seed=4)
    for field in ("raw", "semantic", "cells", "mitochondria"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.raw, c.raw) and not np.array_equal(a.cells, c.cells)


def test_options_change_the_phantom() -> None:
    none = make_phantom(shape=(6, 48, 48), seed=1, mito_density=0.0)
    assert none.mitochondria.max() == 0 and not (none.semantic == MITOCHONDRION).any()
    clean = make_phantom(shape=(6, 48, 48), seed=1, noise=0.0)
    noisy = make_phantom(shape=(6, 48, 48), seed=1, noise=0.2)
    m = clean.semantic == 0
    assert noisy.raw[m].std() > clean.raw[m].std()
    few = make_phantom(shape=(6, 48, 48), seed=1, n_cells=3)
    assert np.unique(few.cells[few.cells > 0]).size <= 3


@pytest.mark.parametrize(
    "kwargs", [{"shape": (4, 8, 8)}, {"shape": (4, 32)}, {"anisotropy": 0.0}, {"mito_density": 0.9}]
)
def test_bad_arguments_raise_one_line_error(kwargs: dict) -> None:
    with pytest.raises(InputError) as err:
        make_phantom(**kwargs)
    assert "\n" not in str(err.value)
