"""The prediction stand-in of tests/infer (``stub``), for tests that segment what ``predict_to`` wrote."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("_infer_stub", Path(__file__).parents[1] / "infer" / "conftest.py")
_stub_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_stub_module)


@pytest.fixture(scope="session")
def stub() -> type:
    return _stub_module.StubModel
