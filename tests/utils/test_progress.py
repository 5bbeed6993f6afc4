"""Progress and status lines: stderr only; periodic lines instead of bars when stderr is not a terminal."""

from __future__ import annotations

import importlib
import logging
import re

import pytest

P = importlib.import_module("slicewise.utils.progress")  # the package exports the function under the same name


@pytest.fixture
def logs(monkeypatch, capsys):
    """The CLI's handler installed; progress allowed; stderr is not a terminal (pytest's capture)."""
    monkeypatch.delenv("SLICEWISE_NO_PROGRESS", raising=False)
    P.setup_logging()
    capsys.readouterr()
    return capsys


def _lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip()]


@pytest.mark.parametrize("total", [2, 7, 40, 1000])
def test_periodic_lines_every_tenth_and_at_the_end(logs, total):
    assert list(P.progress(range(total), desc="work")) == list(range(total))
    cap = logs.readouterr()
    assert cap.out == ""
    lines = _lines(cap.err)
    assert all(re.match(r"\[\d\d:\d\d:\d\d\] work: ", ln) for ln in lines), lines
    assert f"work: {total} items to do" in lines[0]
    counts = [int(m.group(1)) for ln in lines[1:] if (m := re.search(r"work: (\d+)/", ln))]
    assert counts[-1] == total and counts == sorted(counts)
    assert len(counts) <= 11  # at most one line per 10 % (plus the last), for any total
    gaps = [b - a for a, b in zip([0, *counts], counts)]
    assert all(g >= max(1, total // 10) for g in gaps[:-1])


def test_a_line_every_30_seconds_even_without_10_percent(logs, monkeypatch):
    clock = iter(float(t) for t in range(0, 10_000, 31))
    monkeypatch.setattr(P.time, "monotonic", lambda: next(clock))
    list(P.progress(iter(range(5)), desc="slow"))  # no length: only time triggers lines
    lines = [ln for ln in _lines(logs.readouterr().err) if "slow:" in ln]
    assert len(lines) == 5 and lines[-1].rstrip().endswith("s")


def test_quiet_and_disabled_show_nothing(logs, monkeypatch):
    list(P.progress(range(50), desc="x", disable=True))
    monkeypatch.setenv("SLICEWISE_NO_PROGRESS", "1")
    list(P.progress(range(50), desc="x"))
    assert logs.readouterr().err == ""


def test_status_and_warnings_go_to_stderr(logs):
    P.status("training %s (%d steps)", "uniform", 100)
    logging.getLogger("slicewise.some.module").warning("careful")
    cap = logs.readouterr()
    assert cap.out == ""
    err = _lines(cap.err)
    assert err[0].endswith("training uniform (100 steps)") and err[1].endswith("warning: careful")


def test_setup_is_idempotent(logs):
    P.setup_logging()
    P.setup_logging()
    P.status("once")
    assert len(_lines(logs.readouterr().err)) == 1


def test_lightning_progress_is_a_log_callback_off_a_terminal(monkeypatch):
    monkeypatch.delenv("SLICEWISE_NO_PROGRESS", raising=False)
    from pytorch_lightning.callbacks import TQDMProgressBar

    cb = P.lightning_progress(10)
    assert cb is not None and not isinstance(cb, TQDMProgressBar)
    monkeypatch.setattr(P, "stderr_is_terminal", lambda: True)
    assert isinstance(P.lightning_progress(10), TQDMProgressBar)
    monkeypatch.setenv("SLICEWISE_NO_PROGRESS", "1")
    assert P.lightning_progress(10) is None
