"""The prediction stand-in of tests/infer (``stub``, ``small_volume``), for the store tests that write what
``predict_to`` computes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

_spec = importlib.util.spec_from_file_location("_infer_stub_io", Path(__file__).parents[2] / "infer" / "conftest.py")
_stub_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_stub_module)


@pytest.fixture(scope="session")
def stub() -> type:
    return _stub_module.StubModel


@pytest.fixture
def small_volume() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (7, 40, 52), dtype=np.uint8)
