"""Attribution and shift audits apply the one intensity rule before any model work (sweep findings 3a, 4, 5)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from slicewise.diagnostics.attribution import attribution_report, read_tiles
from slicewise.diagnostics.hellinger import shift_report
from slicewise.errors import InputError


class Counting(nn.Module):
    """Wraps a model and counts forward calls."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner, self.calls = inner, 0
        for name in ("in_slices", "in_channels", "out_channels", "heads", "size_divisor"):
            setattr(self, name, getattr(inner, name))

    def check_input_size(self, h: int, w: int) -> None:
        self.inner.check_input_size(h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.inner(x)


def _bad(volume: np.ndarray) -> dict[str, tuple[np.ndarray, str]]:
    return {
        "float 0..255": (volume.astype(np.float32), r"float with values .* outside \[0, 1\]"),
        "int64 0..255": (volume.astype(np.int64), "int64 with values .* under 1/256"),
        "negative int16": (volume.astype(np.int16) - 100, "int16 with negative values"),
        "complex": (volume.astype(np.complex64), "dtype complex64"),
    }


@pytest.mark.parametrize("case", ["float 0..255", "int64 0..255", "negative int16", "complex"])
def test_audits_refuse_crushed_or_non_real_intensities_before_the_model_runs(tiny_model, tiny_volume, case):
    array, match = _bad(tiny_volume)[case]
    model = Counting(tiny_model)
    with pytest.raises(InputError, match=match) as err:
        attribution_report(model, array, n_tiles=2, tile=16, n_resamples=10)
    assert "\n" not in str(err.value) and "--normalize" not in str(err.value)  # the audits have no such option
    with pytest.raises(InputError, match=match):
        shift_report(model, array, ["contrast=0.5"], n_tiles=2, tile=16, n_resamples=0)
    assert model.calls == 0


def test_audits_accept_the_convention_and_equal_the_uint8_result(tiny_model, tiny_volume):
    ref = attribution_report(tiny_model, tiny_volume, n_tiles=3, tile=16, n_resamples=10)
    as_float = attribution_report(tiny_model, tiny_volume.astype(np.float32) / 255, n_tiles=3, tile=16, n_resamples=10)
    wide = attribution_report(tiny_model, tiny_volume.astype(np.int16) * 128, n_tiles=3, tile=16, n_resamples=10)
    np.testing.assert_allclose(as_float["tile_shares"], ref["tile_shares"], atol=1e-5)  # the same [0, 1] input
    np.testing.assert_allclose(wide["tile_shares"], ref["tile_shares"], atol=1e-2)  # ×128/32767 vs ÷255: 0.4% apart


def test_read_tiles_checks_every_tile_it_reads():
    vol = np.full((4, 16, 16), 0.5, np.float32)
    vol[3, 8:, 8:] = 7.0  # a hot corner the whole-volume check was not asked about
    assert read_tiles(vol, [(1, 0, 0)], 8, 3).max() == pytest.approx(0.5)
    with pytest.raises(InputError, match=r"tile at z=2, y=8, x=8\) is float with values 0.5..7 outside \[0, 1\]"):
        read_tiles(vol, [(1, 0, 0), (2, 8, 8)], 8, 3)
