"""Static-shape prediction: fixed batch shape (padding), torch.compile and the CUDA-graph flag on CPU."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from slicewise.errors import InputError
from slicewise.infer.blocks import StaticForward
from slicewise.infer.predict import predict
from slicewise.infer.settings import PredictSettings


def _shapes(model: torch.nn.Module) -> list[int]:
    seen: list[int] = []
    model.register_forward_pre_hook(lambda m, args: seen.append(int(args[0].shape[0])))
    return seen


def test_cuda_graph_flag_on_cpu_pads_to_one_shape_logs_and_changes_nothing(stub, small_volume, caplog) -> None:
    ref = predict(stub(), small_volume, tile=16, overlap=0.25, batch_size=5, device="cpu", progress=False)
    model = stub()
    seen = _shapes(model)
    with caplog.at_level(logging.INFO, logger="slicewise.infer.blocks"):
        got = predict(
            model, small_volume, tile=16, overlap=0.25, batch_size=5, device="cpu", progress=False, cuda_graphs=True
        )
    assert "cuda_graphs: no CUDA device" in caplog.text
    assert set(seen) == {5}  # every call, the short last batch included, has the fixed shape
    np.testing.assert_allclose(got, ref, atol=1e-6, rtol=0)


def test_compiled_prediction_equals_eager(stub, small_volume) -> None:
    """``compile`` with a backend name (aot_eager: the traced graph without inductor's code generation)."""
    ref = predict(stub(), small_volume, tile=16, overlap=0.25, batch_size=4, device="cpu", progress=False)
    got = predict(
        stub(), small_volume, tile=16, overlap=0.25, batch_size=4, device="cpu", progress=False, compile="aot_eager"
    )
    np.testing.assert_allclose(got, ref, atol=1e-6, rtol=0)


def test_static_forward_cuts_the_padding_and_keeps_channels_last(stub) -> None:
    model = stub().eval()
    net = StaticForward(model, batch_size=4, device="cpu")
    x = torch.rand(3, 3, 16, 16).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        y = net(x)
        torch.testing.assert_close(y, model(x), atol=1e-6, rtol=0)
    assert y.shape[0] == 3


def test_flags_are_validated() -> None:
    assert PredictSettings(compile="true").compile is True
    with pytest.raises(InputError, match="compile"):
        PredictSettings(compile=3)
    with pytest.raises(InputError, match="dask"):
        PredictSettings(dask="local:2", cuda_graphs=True)


class _Conv(torch.nn.Module):
    """A stateless 3-slice, 2-class network with the model contract predict reads."""

    in_slices, in_channels, out_channels, size_divisor = 3, 3, 2, 1

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.heads = {"seg": slice(0, 2)}
        self.conv = torch.nn.Conv2d(3, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def test_inductor_compiled_prediction_equals_eager(small_volume) -> None:
    """``compile=True`` (inductor, which builds its CPU kernels on this machine) with CUDA graphs requested:
    on CPU the same probabilities as eager."""
    ref = predict(_Conv(), small_volume, tile=16, overlap=0.25, batch_size=4, device="cpu", progress=False)
    got = predict(
        _Conv(),
        small_volume,
        tile=16,
        overlap=0.25,
        batch_size=4,
        device="cpu",
        progress=False,
        compile=True,
        cuda_graphs=True,
    )
    np.testing.assert_allclose(got, ref, atol=1e-6, rtol=0)
