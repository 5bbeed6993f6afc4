"""SIGTERM and SIGINT: stop a long command cleanly, keep what can be resumed, exit 143 / 130.

The CLI installs :func:`install` once (``slicewise.cli.main``). On SIGTERM (what SLURM sends at pre-emption
or the time limit) or SIGINT (Ctrl-C) the handler raises :class:`Interrupted` in the main thread, wherever it
is. Every writer of slicewise is already safe against an exception at any point (temporary siblings,
resumable partial outputs and states, checkpoints written by rename), so unwinding keeps exactly the state
a rerun resumes from: training's ``checkpoints/last.ckpt`` (written at every validation interval), a
prediction's partial output and finished blocks, segment's finished passes and blocks, a study's finished
cells (and the interrupted cell's run folder). The CLI then prints one line — which signal, and how to
resume (:func:`resume_hint`, the outermost command's) — and exits ``128 + signal`` (143 for SIGTERM, 130
for SIGINT), never 0.

:class:`Interrupted` is a ``BaseException`` but not a ``KeyboardInterrupt``: Lightning turns a
``KeyboardInterrupt`` into ``sys.exit(1)`` and its own SIGTERM notice into a clean (status 0) stop, while
it re-raises any other exception after its ``on_exception`` hooks. Lightning composes its SIGTERM handler
with the one installed before it, so this one still runs inside ``Trainer.fit``. With SLURM auto-requeue
(Lightning's ``SLURMEnvironment``, on by default under SLURM) the *requeue* signal (``--signal=SIGUSR1@90``)
makes Lightning save an ``hpc_ckpt_<n>.ckpt`` and requeue the job; see docs/scale.md.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["Interrupted", "install", "interrupted_message", "restore", "resume_hint"]

_DEFAULT_HINT = "rerun the same command (finished outputs and resumable state are kept)"


class Interrupted(BaseException):  # noqa: N818 - named for what happened, like KeyboardInterrupt
    """The process received SIGTERM or SIGINT; ``exit_code`` is ``128 + signum``."""

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        self.exit_code = 128 + self.signum
        self.hint: str | None = None
        super().__init__(signal.Signals(self.signum).name)


def _raise(signum: int, frame: object) -> None:
    raise Interrupted(signum)


def install() -> dict[int, Any]:
    """Make SIGTERM and SIGINT raise :class:`Interrupted` in the main thread (a no-op in other threads); returns
    the handlers it replaced, for :func:`restore`."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, _raise) for sig in (signal.SIGTERM, signal.SIGINT)}


def restore(previous: dict[int, Any]) -> None:
    """Put back the handlers :func:`install` replaced (the CLI run in-process, e.g. by tests, leaves none behind)."""
    if threading.current_thread() is threading.main_thread():
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


@contextlib.contextmanager
def resume_hint(text: str) -> Iterator[None]:
    """An :class:`Interrupted` raised in the block carries ``text`` (e.g. ``"resume with: slicewise train --out
    runs/a --resume"``) as its ``hint``. Nested hints: the outermost one wins (a study's, not the training run's
    inside it)."""
    try:
        yield
    except Interrupted as err:
        err.hint = text
        raise


def interrupted_message(err: Interrupted) -> str:
    """The one line the CLI prints for ``err``: the signal, that the job stopped, and how to resume."""
    return f"stopped by {signal.Signals(err.signum).name}; {err.hint or _DEFAULT_HINT}"
