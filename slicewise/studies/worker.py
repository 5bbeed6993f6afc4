"""The process :func:`slicewise.studies.execute.run_parallel` starts per GPU: ``python -m slicewise.studies.worker
ARGS``, where ARGS is one JSON object of :func:`~slicewise.studies.execute.run_study`'s keyword arguments
(the study file, ``out``, ``cells``, ``smoke``, ``overrides``, ``data_root``, ``report``; JSON values only).

The worker calls the library, not the command line, so it depends on ``run_study``'s signature only. It runs
with the signal handling of the CLI (SIGTERM / SIGINT keep the resumable state; exit 143 / 130) and writes
log lines and errors to stderr, which the parent sends to the cell's ``log.txt``. Exit status: 0 when every
cell it was given is done, 1 when one failed (its ``error.txt`` says why), 2 for a one-line error.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from slicewise.errors import SlicewiseError
from slicewise.studies.execute import run_study
from slicewise.utils import signals
from slicewise.utils.progress import setup_logging

USAGE = 'usage: python -m slicewise.studies.worker \'{"source": STUDY, "out": DIR, "cells": "3", ...}\''


def parse_args(argv: Sequence[str]) -> dict[str, Any]:
    """The one JSON object of keyword arguments for ``run_study``; :class:`ValueError` naming the problem."""
    if len(argv) != 1:
        raise ValueError(f"expected one JSON argument, got {len(argv)}")
    kwargs = json.loads(argv[0])
    if not isinstance(kwargs, dict) or "source" not in kwargs:
        raise ValueError("the JSON argument must be an object with at least 'source'")
    return kwargs


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``run_study(**ARGS)``; the exit status of the module docstring."""
    try:
        kwargs = parse_args(sys.argv[1:] if argv is None else argv)
    except ValueError as err:
        print(f"error: {err}\n{USAGE}", file=sys.stderr)
        return 2
    previous = signals.install()
    setup_logging()
    try:
        summary = run_study(**kwargs, echo=print)
    except SlicewiseError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except signals.Interrupted as err:
        print(f"error: {signals.interrupted_message(err)}", file=sys.stderr)
        return err.exit_code
    finally:
        signals.restore(previous)
    return 1 if summary.failed or summary.pending else 0


if __name__ == "__main__":
    sys.exit(main())
