"""Asymmetry indices and bootstrap summaries: invariants (hypothesis) and known cases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slicewise.diagnostics.asymmetry import (
    centre_share,
    mirror_asymmetry,
    normalize_shares,
    pair_difference,
    summarize_shares,
)

odd_k = st.sampled_from([1, 3, 5, 7])


@st.composite
def shares(draw: st.DrawFn) -> np.ndarray:
    k = draw(odd_k)
    mags = draw(st.lists(st.floats(0.01, 10.0), min_size=k, max_size=k))
    return normalize_shares(mags)


@given(shares())
@settings(max_examples=60, deadline=None)
def test_indices_invariants(s: np.ndarray) -> None:
    ma = mirror_asymmetry(s)
    assert 0.0 <= ma <= 1.0 + 1e-12
    assert np.isclose(mirror_asymmetry(s[::-1]), ma)
    assert np.isclose(pair_difference(s[::-1]), -pair_difference(s))
    assert centre_share(s) == s[(len(s) - 1) // 2]
    sym = normalize_shares(s + s[::-1])
    assert mirror_asymmetry(sym) == pytest.approx(0.0, abs=1e-12)


def test_indices_known_values() -> None:
    s = np.array([0.263, 0.525, 0.212])
    assert mirror_asymmetry(s) == pytest.approx(0.051 / 0.475)
    assert pair_difference(s) == pytest.approx(0.051)
    assert mirror_asymmetry(np.array([0.5, 0.0, 0.5, 0.0, 0.0])) == pytest.approx(1.0)
    assert mirror_asymmetry(np.array([1.0])) == 0.0
    assert mirror_asymmetry(np.array([[0.2, 0.6, 0.2], [0.4, 0.2, 0.4]])).tolist() == [0.0, 0.0]


def test_summary_bootstrap() -> None:
    rng = np.random.default_rng(0)
    tiles = rng.dirichlet([8.0, 8.0, 2.0], size=40)
    a = summarize_shares(tiles, seed=3, n_resamples=500)
    b = summarize_shares(tiles, seed=3, n_resamples=500)
    assert a == b
    means = tiles.mean(0)
    for c, sh in enumerate(a["shares"]):
        assert sh["value"] == pytest.approx(means[c])
        assert sh["ci"][0] < sh["value"] < sh["ci"][1]
        assert sh["offset"] == c - 1
    assert a["pair_difference"]["value"] == pytest.approx(means[0] - means[2])
    assert a["pair_difference"]["ci"][0] > 0  # slice 0 (weight 8) beats slice 2 (weight 2)
    assert a["n_tiles"] == 40
    const = summarize_shares(np.tile([0.3, 0.4, 0.3], (10, 1)), n_resamples=200)
    assert const["mirror_asymmetry"]["ci"] == pytest.approx([0.0, 0.0], abs=1e-12)
    one = summarize_shares(np.array([[0.2, 0.5, 0.3]]))
    assert one["centre_share"]["ci"] == [0.5, 0.5]
