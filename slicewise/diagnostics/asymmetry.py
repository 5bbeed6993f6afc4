"""Slice-share asymmetry indices and their bootstrap confidence intervals.

Shares ``s`` carry the slice axis last (``s[..., c]``, ``k = 2r+1`` slices, channel ``c`` ↔
z-offset ``c - r``) and sum to 1 along it. Indices (docs/design-notes.md, "Attribution and asymmetry"):

- mirror asymmetry ``MA = Σ_{c<r} |s_c − s_{k−1−c}| / Σ_{c≠r} s_c`` in [0, 1] (0 for ``k = 1``:
  there is nothing to mirror);
- centre share ``s_r``;
- signed pair difference ``s_0 − s_{k−1}`` (0 for ``k = 1``).

Per-tile shares are averaged over tiles; 95% confidence intervals come from a seeded
percentile bootstrap over tiles (:func:`scipy.stats.bootstrap`), the indices of each
resample computed from its mean shares.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

INDICES: tuple[str, ...] = ("mirror_asymmetry", "centre_share", "pair_difference")


def normalize_shares(magnitudes: Any) -> np.ndarray:
    """Non-negative magnitudes ``(..., k)`` → shares summing to 1 along the last axis (float64)."""
    m = np.asarray(magnitudes, dtype=np.float64)
    return m / m.sum(axis=-1, keepdims=True)


def mirror_asymmetry(shares: Any) -> np.ndarray:
    """``Σ_{c<r} |s_c − s_{k−1−c}| / Σ_{c≠r} s_c`` along the last axis; 0 where k = 1 or no off-centre weight."""
    s = np.asarray(shares, dtype=np.float64)
    k = s.shape[-1]
    r = (k - 1) // 2
    if k == 1:
        return np.zeros(s.shape[:-1])
    num = np.abs(s[..., :r] - s[..., ::-1][..., :r]).sum(axis=-1)
    den = s.sum(axis=-1) - s[..., r]
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def centre_share(shares: Any) -> np.ndarray:
    """Share of the centre slice ``s_r`` (last axis)."""
    s = np.asarray(shares, dtype=np.float64)
    return s[..., (s.shape[-1] - 1) // 2]


def pair_difference(shares: Any) -> np.ndarray:
    """Signed outer-pair difference ``s_0 − s_{k−1}`` (last axis); 0 for k = 1."""
    s = np.asarray(shares, dtype=np.float64)
    return s[..., 0] - s[..., -1]


def _statistic(k: int):
    """Vectorised bootstrap statistic: data ``(k, ..., n)`` → ``(k + 3, ...)`` (shares, MA, s_r, s_0 − s_{k−1})."""

    def stat(x: np.ndarray, axis: int = -1) -> np.ndarray:
        mean = np.moveaxis(np.mean(x, axis=axis), 0, -1)  # (..., k)
        idx = [mirror_asymmetry(mean), centre_share(mean), pair_difference(mean)]
        return np.concatenate([np.moveaxis(mean, -1, 0), np.stack(idx, axis=0)], axis=0)

    return stat


def summarize_shares(
    tile_shares: Any, *, seed: int = 0, n_resamples: int = 2000, level: float = 0.95
) -> dict[str, Any]:
    """Mean shares over tiles and the indices, each with a percentile-bootstrap CI over tiles.

    ``tile_shares``: ``(N, k)``, one row per tile summing to 1. Returns
    ``{"shares": [{"slice", "offset", "value", "ci"}...], "mirror_asymmetry": {"value", "ci"},
    "centre_share": {...}, "pair_difference": {...}, "n_tiles": N, "ci_level": level}``
    with plain floats (``ci`` = ``[low, high]``; with a single tile the CI collapses to the value).
    """
    s = np.asarray(tile_shares, dtype=np.float64)
    n, k = s.shape
    r = (k - 1) // 2
    stat = _statistic(k)
    point = stat(s.T, axis=-1)
    if n > 1:
        res = stats.bootstrap(
            (s.T,),
            stat,
            axis=-1,
            vectorized=True,
            n_resamples=n_resamples,
            confidence_level=level,
            method="percentile",
            random_state=np.random.default_rng(seed),
        )
        low, high = np.asarray(res.confidence_interval.low), np.asarray(res.confidence_interval.high)
    else:
        low, high = point.copy(), point.copy()
    out: dict[str, Any] = {
        "shares": [
            {"slice": c, "offset": c - r, "value": float(point[c]), "ci": [float(low[c]), float(high[c])]}
            for c in range(k)
        ],
    }
    for j, name in enumerate(INDICES):
        out[name] = {"value": float(point[k + j]), "ci": [float(low[k + j]), float(high[k + j])]}
    out["n_tiles"] = int(n)
    out["ci_level"] = float(level)
    return out
