"""configure_threads / cap_workers: torch threads × processes never exceed the cores; --threads wins."""

from __future__ import annotations

import pytest
import torch

from slicewise.errors import InputError
from slicewise.utils import device as D


@pytest.fixture
def restore(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setattr(D, "_explicit_threads", None)
    yield monkeypatch
    torch.set_num_threads(before)


@pytest.mark.parametrize("cores, processes, expected", [(2, 1, 2), (2, 2, 1), (2, 3, 1), (16, 3, 5), (1, 4, 1)])
def test_default_is_cores_over_processes(restore, cores, processes, expected):
    restore.delenv("OMP_NUM_THREADS", raising=False)
    restore.setattr(D, "available_cores", lambda: cores)
    assert D.configure_threads(processes=processes) == expected == torch.get_num_threads()
    assert expected * processes <= max(cores, processes)


def test_omp_env_then_explicit_threads_win(restore):
    import os

    restore.setattr(D, "available_cores", lambda: 8)
    restore.setenv("OMP_NUM_THREADS", "3")
    assert D.configure_threads(processes=1) == 3
    assert D.configure_threads(2) == 2 and os.environ["OMP_NUM_THREADS"] == "2"  # children inherit it
    assert D.configure_threads(processes=4) == 2  # remembered for the rest of the process (train after --threads)


def test_bad_thread_count_is_one_line(restore):
    with pytest.raises(InputError, match="--threads 0"):
        D.configure_threads(0)


@pytest.mark.parametrize("cores, asked, expected", [(2, 4, 1), (2, 1, 1), (1, 2, 0), (8, 2, 2), (4, 0, 0)])
def test_workers_capped_below_the_cores(monkeypatch, caplog, cores, asked, expected):
    monkeypatch.setattr(D, "available_cores", lambda: cores)
    assert D.cap_workers(asked) == expected
    assert ("exceeds" in caplog.text) == (asked != expected)
